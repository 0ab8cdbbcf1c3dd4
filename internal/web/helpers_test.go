package web_test

import (
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/enginetest"
	"github.com/quantumflow/qflow/internal/web"
	"github.com/quantumflow/qflow/pipelines"
)

type testBundle struct {
	*enginetest.Env
	srv *httptest.Server
}

// setup gives the test its own database with the probe workflows registered, and the web
// view served on it.
func setup(t *testing.T) *testBundle { return setupWith(t, enginetest.Probes) }

// setupWith is setup with the workflows register adds.
func setupWith(t *testing.T, register func(*pipelines.Registry, *pgxpool.Pool)) *testBundle {
	t.Helper()
	b := &testBundle{Env: enginetest.New(t, register)}
	h, err := web.New(web.Config{DB: b.Pool})
	require.NoError(t, err)
	b.srv = httptest.NewServer(h)
	t.Cleanup(b.srv.Close)
	return b
}

// get fetches a page of the view and returns its status code and body.
func (b *testBundle) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(b.Ctx, http.MethodGet, b.srv.URL+path, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// page fetches a page that must be served and returns its body with HTML entities decoded, as
// a reader sees its text.
func (b *testBundle) page(t *testing.T, path string) string {
	t.Helper()
	code, body := b.get(t, path)
	require.Equal(t, http.StatusOK, code, path)
	return html.UnescapeString(body)
}
