package chaos

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/cli"
)

// certs makes a CA and a server certificate for localhost signed by it; it returns the CA
// certificate and the server's certificate and key, PEM-encoded.
func certs(t *testing.T) (ca, cert, key []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "qflow test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caTmpl, &srvKey.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// TestCLIConnectsWithVerifyFull runs qflow commands over TLS with sslmode=verify-full against
// a private cluster with a certificate of our own CA, and checks that a certificate from
// another CA is refused.
func TestCLIConnectsWithVerifyFull(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a Postgres cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root, err := repoRoot()
	require.NoError(t, err)
	cl, err := startCluster(ctx, root, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { cl.stop(context.Background()) })

	ca, cert, key := certs(t)
	for name, data := range map[string][]byte{"server.crt": cert, "server.key": key} {
		path := filepath.Join(cl.data, name)
		require.NoError(t, os.WriteFile(path, data, 0o600))
		if os.Geteuid() == 0 { // the server runs as postgres, which must own its key
			pg, err := user.Lookup("postgres")
			require.NoError(t, err)
			uid, _ := strconv.Atoi(pg.Uid)
			gid, _ := strconv.Atoi(pg.Gid)
			require.NoError(t, os.Chown(path, uid, gid))
		}
	}
	conn, err := pgx.Connect(ctx, cl.url)
	require.NoError(t, err)
	for _, sql := range []string{"ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()", "CREATE DATABASE tls"} {
		_, err := conn.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	conn.Close(ctx)
	caFile := filepath.Join(t.TempDir(), "root.crt")
	require.NoError(t, os.WriteFile(caFile, ca, 0o600))
	otherCA, _, _ := certs(t)
	otherFile := filepath.Join(t.TempDir(), "other.crt")
	require.NoError(t, os.WriteFile(otherFile, otherCA, 0o600))

	qflow := func(rootCert string, args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		url := fmt.Sprintf("postgres://postgres:hunter2@localhost:%s/tls?sslmode=verify-full&sslrootcert=%s", cl.port, rootCert)
		code := cli.Main(args, cli.Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string {
			if k == "DATABASE_URL" {
				return url
			}
			return ""
		}})
		return code, stdout.String(), stderr.String()
	}
	// The server turns TLS on when it has reloaded its configuration, a moment after asking.
	var code int
	var out, stderr string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, out, stderr = qflow(caFile, "migrate", "--roles=false"); code == 0 || time.Now().After(deadline) {
			break
		}
	}
	require.Zero(t, code, stderr)
	require.Contains(t, out, "registered probe_chain")
	code, out, stderr = qflow(caFile, "start", "probe_chain")
	require.Zero(t, code, stderr)
	require.Contains(t, out, "run 1 started")
	var ssl bool
	conn, err = pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@localhost:%s/tls?sslmode=verify-full&sslrootcert=%s", cl.port, caFile))
	require.NoError(t, err)
	require.NoError(t, conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl))
	conn.Close(ctx)
	require.True(t, ssl)

	code, _, stderr = qflow(otherFile, "list")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "certificate signed by unknown authority")
	require.NotContains(t, stderr, "hunter2")
}
