package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
)

// The network between the workers and Postgres is toxiproxy's (github.com/Shopify/toxiproxy,
// built by the Makefile from the Go module proxy, as sqlc is). Each worker slot connects
// through a proxy of its own, so a network fault cuts off or slows one worker while the rest
// of the fleet, the loaders and the checks, which connect directly, carry on.

// network is the toxiproxy server and its proxies, one per worker slot.
type network struct {
	cmd      *exec.Cmd
	done     chan struct{} // closed when the server has exited
	api      *toxiproxy.Client
	upstream string // the Postgres server's host:port
	proxies  []*toxiproxy.Proxy
}

// netFault is how a kind of network fault is made: a toxic on both directions of a slot's
// proxy for a while, or (no toxic) the proxy disabled. cutOff says whether the worker behind
// it cannot reach the database meanwhile; a worker that is only slowed, or whose connections
// are cut but come back at once, is still connected, and must not let a lease run out.
type netFault struct {
	toxic   string
	attrs   toxiproxy.Attributes
	streams []string
	hold    func(c *chaos) time.Duration
	cutOff  bool
}

var bothStreams = []string{"upstream", "downstream"}

func holdFor(d time.Duration) func(*chaos) time.Duration {
	return func(*chaos) time.Duration { return d }
}

var netFaults = map[string]netFault{
	// 200 ms each way, give or take 100: every call takes most of a second.
	FaultLatency: {toxic: "latency", attrs: toxiproxy.Attributes{"latency": 200, "jitter": 100}, streams: bothStreams, hold: holdFor(5 * time.Second)},
	// 16 KB/s from Postgres to the worker.
	FaultBandwidth: {toxic: "bandwidth", attrs: toxiproxy.Attributes{"rate": 16}, streams: []string{"downstream"}, hold: holdFor(5 * time.Second)},
	// Every connection is cut after 5,000 bytes from Postgres (a TLS middlebox, a flaky NAT):
	// a worker reconnects again and again, and each call it resends must be safe.
	FaultLimitData: {toxic: "limit_data", attrs: toxiproxy.Attributes{"bytes": 5000}, streams: []string{"downstream"},
		hold: func(c *chaos) time.Duration { return c.pick(3*time.Second, 20*time.Second) }},
	// Connection reset by peer for whatever sends, connects included.
	FaultReset: {toxic: "reset_peer", attrs: toxiproxy.Attributes{"timeout": 0}, streams: bothStreams, cutOff: true,
		hold: func(c *chaos) time.Duration { return c.pick(1500*time.Millisecond, 3*time.Second) }},
	// Refused connects, open connections closed: the database's host is down.
	FaultDown: {cutOff: true, hold: holdFor(3 * time.Second)},
	// Nothing gets through and nothing is closed, a partition that sends no reset: only the
	// engine's own deadlines (15 s a call, 5 s a connect) get a worker out of a call, and a
	// result must outlast several of them. Removing the toxic closes the connections it held.
	FaultBlackHole: {toxic: "timeout", attrs: toxiproxy.Attributes{"timeout": 0}, streams: bothStreams, cutOff: true,
		hold: func(c *chaos) time.Duration { return c.pick(4*time.Second, 40*time.Second) }},
}

// pick is the short mode's d, or in the full mode a duration between d and most.
func (c *chaos) pick(d, most time.Duration) time.Duration {
	if c.cfg.Short {
		return d
	}
	return d + time.Duration(c.intn(int((most-d)/time.Millisecond)+1))*time.Millisecond
}

// outage is a network fault as the checks see it: which slot, when (local clock, which is
// the private cluster's), and whether the worker was cut off.
type outage struct {
	slot       int
	kind       string
	cutOff     bool
	start, end time.Time
}

// faultAftermath is how long a network fault or a restart keeps a worker from the database
// once healed: its connections come back, and a call that was cut off is sent again.
const faultAftermath = 2 * time.Second

// underNetworkFault says whether worker was under a network fault of any kind at some moment
// between from and to. The faults' times are on the local clock, the attempts' on the
// database's: the private cluster runs on this machine.
func (c *chaos) underNetworkFault(worker string, from, to time.Time) bool {
	slot := workerSlot(worker)
	for _, o := range c.outages {
		if o.slot == slot && !from.After(o.end.Add(faultAftermath)) && !to.Before(o.start) {
			return true
		}
	}
	return false
}

// cutOffThroughout says whether worker was cut off from the database, by a network fault of
// its slot that cuts off or by a Postgres restart, at every moment between from and to.
func (c *chaos) cutOffThroughout(worker string, from, to time.Time) bool {
	slot := workerSlot(worker)
	var spans [][2]time.Time
	for _, o := range c.outages {
		if o.slot == slot && o.cutOff {
			spans = append(spans, [2]time.Time{o.start, o.end.Add(faultAftermath)})
		}
	}
	for _, r := range c.restarts {
		spans = append(spans, [2]time.Time{r.start, r.end.Add(faultAftermath)})
	}
	slices.SortFunc(spans, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	covered := from
	for _, s := range spans {
		if s[0].After(covered) {
			break
		}
		covered = later(covered, s[1])
	}
	return covered.After(from) && !covered.Before(to)
}

// workerSlot is the slot of a worker of the fleet (chaos-w<slot>-<generation>), or -1.
func workerSlot(id string) int {
	var slot, gen int
	if _, err := fmt.Sscanf(id, "chaos-w%d-%d", &slot, &gen); err != nil {
		return -1
	}
	return slot
}

// toxiproxyBinary is the server to run: the configured one, QFLOW_TOXIPROXY, or the one
// `make toxiproxy` builds and names.
func toxiproxyBinary(ctx context.Context, root, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if env := os.Getenv("QFLOW_TOXIPROXY"); env != "" {
		return env, nil
	}
	cmd := exec.CommandContext(ctx, "make", "-s", "--no-print-directory", "toxiproxy")
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building toxiproxy (make toxiproxy): %w\n%s", err, stderr.String())
	}
	lines := strings.Fields(string(out))
	if len(lines) == 0 {
		return "", errors.New("make toxiproxy named no binary")
	}
	return lines[len(lines)-1], nil
}

// startNetwork starts toxiproxy on a free port and a proxy to the server of dbURL per slot.
func startNetwork(ctx context.Context, bin, dir, dbURL string, slots int) (*network, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return nil, fmt.Errorf("chaos server URL is not a URL: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "toxiproxy.log"))
	if err != nil {
		return nil, err
	}
	n := &network{cmd: exec.Command(bin, "-host", "127.0.0.1", "-port", port), done: make(chan struct{}),
		upstream: u.Host, api: toxiproxy.NewClient("127.0.0.1:" + port)}
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	if err := n.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting toxiproxy %s: %w", bin, err)
	}
	go func() {
		_ = n.cmd.Wait()
		logFile.Close()
		close(n.done)
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := n.api.Version(); err == nil {
			break
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			n.stop()
			return nil, fmt.Errorf("toxiproxy did not answer within 10 s: %w (see %s)", err, logFile.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for slot := range slots {
		p, err := n.api.CreateProxy(fmt.Sprintf("slot%d", slot), "127.0.0.1:0", n.upstream)
		if err != nil {
			n.stop()
			return nil, fmt.Errorf("creating the proxy of slot %d: %w", slot, err)
		}
		n.proxies = append(n.proxies, p)
	}
	return n, nil
}

func (n *network) stop() {
	_ = n.cmd.Process.Kill()
	<-n.done
}

// through returns dbURL with its host and port those of the proxy p.
func through(dbURL string, p *toxiproxy.Proxy) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	u.Host = p.Listen
	return u.String(), nil
}

// apply makes the fault on proxy p, its toxics named after name.
func (f netFault) apply(p *toxiproxy.Proxy, name string) error {
	if f.toxic == "" {
		return p.Disable()
	}
	for _, stream := range f.streams {
		if _, err := p.AddToxic(name+"_"+stream, f.toxic, stream, 1, f.attrs); err != nil {
			return err
		}
	}
	return nil
}

// heal undoes apply, whatever of it was done.
func (f netFault) heal(p *toxiproxy.Proxy, name string) error {
	if f.toxic == "" {
		return p.Enable()
	}
	var errs []error
	for _, stream := range f.streams {
		if err := p.RemoveToxic(name + "_" + stream); err != nil && !strings.Contains(err.Error(), "not found") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// netFault puts a network fault between the busiest worker and Postgres for a while, then
// heals it. In the full mode one fault in three is between every worker and Postgres, as when
// the database's own network fails: nobody is left to sweep meanwhile, and everyone comes back
// at once.
func (c *chaos) netFault(ctx context.Context, kind string) {
	f := netFaults[kind]
	slot, running, long := c.busiestSlot(ctx)
	slots := []int{slot}
	on := fmt.Sprintf("%s (%d steps running, %d of them long)", c.fleet.proc(slot).id, running, long)
	if !c.cfg.Short && c.intn(3) == 0 {
		slots, on = slots[:0], "every worker"
		for slot := range c.cfg.Workers {
			slots = append(slots, slot)
		}
	}
	hold := f.hold(c)
	start := time.Now()
	var err error
	for _, slot := range slots {
		if err = f.apply(c.net.proxies[slot], kind); err != nil {
			break
		}
	}
	if err == nil {
		c.logf("%s on %s for %s", kind, on, hold.Round(100*time.Millisecond))
		select {
		case <-ctx.Done():
		case <-time.After(hold):
		}
	}
	// Healed whatever happened: a fault left in place would fail every later check.
	for _, slot := range slots {
		err = errors.Join(err, f.heal(c.net.proxies[slot], kind))
	}
	if err != nil {
		c.violation("%s on %s: %v", kind, on, err)
		return
	}
	end := time.Now()
	c.mu.Lock()
	for _, slot := range slots {
		c.outages = append(c.outages, outage{slot: slot, kind: kind, cutOff: f.cutOff, start: start, end: end})
	}
	c.mu.Unlock()
	c.countFault(kind, 1)
}

// startUnderBlackHole starts a worker whose database does not answer at all, through a proxy
// of its own that swallows everything, and measures how long it takes to say so: the time to
// its first "database unavailable; retrying" line, and, if it gets there before ctx ends, to
// its exit once its start-up patience is spent. Behind the proxy is a listener that never
// answers rather than Postgres: a connection whose startup packet never comes holds up a fast
// shutdown of Postgres (measured: 12 s, against a fraction of a second) until the client
// gives up, and the Postgres restarts are meant to be quick.
func (c *chaos) startUnderBlackHole(ctx context.Context) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.violation("start-up under a black hole: %v", err)
		return
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, conn := range held {
				conn.Close()
			}
		}()
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, conn)
		}
	}()
	p, err := c.net.api.CreateProxy("blackhole", "127.0.0.1:0", silent.Addr().String())
	if err == nil {
		err = netFaults[FaultBlackHole].apply(p, "blackhole")
	}
	var dbURL string
	if err == nil {
		dbURL, err = through(c.logins.worker, p)
	}
	if err != nil {
		c.violation("start-up under a black hole: %v", err)
		return
	}
	defer p.Delete()
	logFile, err := os.Create(filepath.Join(c.dir, "chaos-blackhole.log"))
	if err != nil {
		c.violation("start-up under a black hole: %v", err)
		return
	}
	defer logFile.Close()
	cmd := exec.Command(c.bin, "worker", "--id", "chaos-blackhole", "--metrics-addr", "")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	stderr, err := cmd.StderrPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		c.violation("start-up under a black hole: starting a worker: %v", err)
		return
	}
	start := time.Now()
	firstRetry, exited := make(chan time.Duration, 1), make(chan time.Duration, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			if strings.Contains(sc.Text(), "database unavailable; retrying") {
				select {
				case firstRetry <- time.Since(start):
				default:
				}
			}
		}
		_, _ = io.Copy(logFile, stderr)
		// Wait closes the pipe: only once it has been read to the end.
		_ = cmd.Wait()
		exited <- time.Since(start)
	}()
	defer func() {
		_ = cmd.Process.Kill()
	}()
	select {
	case d := <-firstRetry:
		c.report.BlackHoleFirstRetry = d
		c.logf("a worker starting under a black hole logged its first retry after %s", d.Round(10*time.Millisecond))
	case d := <-exited:
		c.violation("start-up under a black hole: the worker exited after %s without logging a retry (see %s)", d.Round(time.Millisecond), logFile.Name())
		return
	case <-time.After(40 * time.Second):
		c.violation("start-up under a black hole: no retry logged within 40 s (see %s)", logFile.Name())
		return
	case <-ctx.Done():
		return
	}
	select {
	case d := <-exited:
		c.report.BlackHoleGaveUp = d
		c.logf("a worker starting under a black hole gave up after %s", d.Round(10*time.Millisecond))
	case <-ctx.Done():
	}
}

// freePort finds a port nobody listens on, for a server to take a moment later.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}
