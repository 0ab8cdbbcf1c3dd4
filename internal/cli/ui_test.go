package cli

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbtest"
)

// syncBuffer is a bytes.Buffer the serving goroutine and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type uiBundle struct {
	ctx    context.Context
	env    Env
	stdout *syncBuffer
}

func setupUI(t *testing.T) *uiBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	url := dbtest.URL(t)
	b := &uiBundle{ctx: ctx, stdout: &syncBuffer{}}
	b.env = Env{
		Stdout: b.stdout, Stderr: io.Discard,
		Getenv: func(k string) string {
			if k == "DATABASE_URL" {
				return url
			}
			return ""
		},
	}
	return b
}

// freeAddr finds a port nobody listens on (it may be taken again before use; tests accept that).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestUIServesUntilTheContextEnds(t *testing.T) {
	t.Parallel()
	b := setupUI(t)
	addr := freeAddr(t)
	ctx, stop := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() { done <- runUI(ctx, b.env, []string{"--addr", addr}) }()

	var resp *http.Response
	require.Eventually(t, func() bool {
		var err error
		resp, err = http.Get("http://" + addr + "/")
		return err == nil
	}, 20*time.Second, 20*time.Millisecond, "the view answers")
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "<title>Runs · QuantumFlow</title>")
	require.Contains(t, b.stdout.String(), "serving http://"+addr+"/")

	stop()
	select {
	case err := <-done:
		require.NoError(t, err, "a signal ends the command cleanly")
	case <-time.After(10 * time.Second):
		t.Fatal("qflow ui did not stop")
	}
}

func TestUIRefusesBadArguments(t *testing.T) {
	t.Parallel()
	b := setupUI(t)
	require.ErrorContains(t, runUI(b.ctx, b.env, []string{"extra"}), `unexpected argument "extra"`)
	require.ErrorContains(t, runUI(b.ctx, b.env, []string{"--addr", "256.1.1.1:99999"}), "listening on 256.1.1.1:99999")
	var help bytes.Buffer
	noDB := Env{Stdout: io.Discard, Stderr: &help, Getenv: func(string) string { return "" }}
	require.ErrorContains(t, runUI(b.ctx, noDB, nil), "DATABASE_URL is not set")
	require.ErrorIs(t, runUI(b.ctx, noDB, []string{"-h"}), flag.ErrHelp)
	require.Contains(t, help.String(), `(default "127.0.0.1:8080")`, "localhost unless told otherwise")
}
