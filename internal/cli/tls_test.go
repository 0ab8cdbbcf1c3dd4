package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// caFile writes a self-signed CA certificate, the kind of file sslrootcert names.
func caFile(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "qflow test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "root.crt")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return path
}

func TestVerifyFullURLIsAcceptedAndItsPasswordNeverShown(t *testing.T) {
	t.Parallel()
	ca := caFile(t)
	cfg, err := pgxpool.ParseConfig("postgres://app:s3cret-pw@db.example.com:5433/prod?sslmode=verify-full&sslrootcert=" + ca)
	require.NoError(t, err)
	tlsCfg := cfg.ConnConfig.TLSConfig
	require.NotNil(t, tlsCfg, "TLS is on")
	require.Equal(t, "db.example.com", tlsCfg.ServerName, "the certificate must name the host")
	require.False(t, tlsCfg.InsecureSkipVerify)
	require.NotNil(t, tlsCfg.RootCAs, "and chain to the given CA")
	require.Empty(t, cfg.ConnConfig.Fallbacks, "verify-full never falls back to a plaintext connection")
	require.Equal(t, "postgres://app@db.example.com:5433/prod", redact(&cfg.ConnConfig.Config))

	// A connection that fails (nothing listens there) names the server, not the password.
	for _, url := range []string{
		"postgres://app:s3cret-pw@127.0.0.1:1/prod?sslmode=verify-full&connect_timeout=5&sslrootcert=" + ca,
		"postgres://app:s3cret-pw@127.0.0.1:notaport/prod",
		"host=127.0.0.1 port=1 user=app password=s3cret-pw dbname=prod sslmode=verify-full sslrootcert=" + ca,
	} {
		_, err := open(context.Background(), "DATABASE_URL", url, 1, false)
		require.Error(t, err)
		require.NotContains(t, err.Error(), "s3cret", url)
		require.NotContains(t, describe(err), "s3cret", url)
	}
}
