package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// fleet is the worker processes, one per slot; a slot's process is replaced after a fault,
// under a new id (chaos-w<slot>-<generation>), so attempts tell which process made them.
type fleet struct {
	c     *chaos
	mu    sync.Mutex
	procs []*proc
	gens  []int
}

type proc struct {
	id   string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done
}

// shutdownTimeout is the workers' --shutdown-timeout: a SIGTERM'd worker lets running steps
// finish this long, then releases them.
const shutdownTimeout = 3 * time.Second

// start runs a new process in slot and waits until it has announced itself.
func (f *fleet) start(ctx context.Context, slot int) error {
	f.mu.Lock()
	f.gens[slot]++
	id := fmt.Sprintf("chaos-w%d-%d", slot, f.gens[slot])
	f.mu.Unlock()
	// Each slot reaches Postgres through its own proxy, where the network faults are made.
	dbURL, err := through(f.c.logins.worker, f.c.net.proxies[slot])
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(f.c.dir, id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(f.c.bin, "worker", "--id", id, "--max-workers", "4", "--metrics-addr", "127.0.0.1:0",
		"--shutdown-timeout", shutdownTimeout.String())
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "QFLOW_LOG_LEVEL=info")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting worker %s: %w", id, err)
	}
	p := &proc{id: id, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	f.mu.Lock()
	f.procs[slot] = p
	f.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		err := retrySQL(ctx, func(ctx context.Context) error {
			return f.c.admin.QueryRow(ctx, "SELECT count(*) FROM qflow.workers WHERE id = $1", id).Scan(&n)
		})
		if err == nil && n > 0 {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("worker %s exited while starting (%v); see %s", id, p.err, filepath.Join(f.c.dir, id+".log"))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("worker %s did not announce itself within a minute; see %s", id, filepath.Join(f.c.dir, id+".log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proc returns the process of slot.
func (f *fleet) proc(slot int) *proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.procs[slot]
}

// slotOf returns the slot whose current process has the id, or -1.
func (f *fleet) slotOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.procs {
		if p != nil && p.id == id {
			return i
		}
	}
	return -1
}

// kill sends SIGKILL and waits for the process to be gone.
func (f *fleet) kill(slot int) *proc {
	p := f.proc(slot)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	return p
}

// term sends SIGTERM and waits for a graceful exit; an exit that is not clean, or not within
// the shutdown timeout and a margin, is an error (and the process is killed).
func (f *fleet) term(slot int) (*proc, error) {
	p := f.proc(slot)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(shutdownTimeout + 20*time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		return p, fmt.Errorf("worker %s did not exit within %s of SIGTERM", p.id, shutdownTimeout+20*time.Second)
	}
	if p.err != nil {
		return p, fmt.Errorf("worker %s exited with %v after SIGTERM", p.id, p.err)
	}
	return p, nil
}

// ensureAll restarts any slot whose process is gone.
func (f *fleet) ensureAll(ctx context.Context) {
	for slot := range f.procs {
		p := f.proc(slot)
		select {
		case <-p.done:
			f.c.violation("worker %s had exited on its own (%v)", p.id, p.err)
			if err := f.start(ctx, slot); err != nil {
				f.c.violation("restarting slot %d: %v", slot, err)
			}
		default:
		}
	}
}

// stopAll stops every process gracefully, killing what does not stop.
func (f *fleet) stopAll() {
	var wg sync.WaitGroup
	for slot := range f.procs {
		if f.proc(slot) == nil {
			continue
		}
		wg.Go(func() {
			p := f.proc(slot)
			select {
			case <-p.done:
				return
			default:
			}
			if _, err := f.term(slot); err != nil {
				f.c.logf("stopping: %v", err)
			}
		})
	}
	wg.Wait()
}
