package architecture

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// writeTree creates files (path -> content) under a temporary directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	return root
}

func TestDiscoverReadsPackageFacts(t *testing.T) {
	t.Parallel()
	root := writeTree(t, map[string]string{
		"go.mod": "module example.com/shop\n\ngo 1.22\n",
		"cmd/shop/main.go": `package main

import "example.com/shop/api"

func main() { api.Serve() }
`,
		"api/server.go": `package api

import (
	"net/http"

	"example.com/shop/store"
)

// Server answers HTTP.
type Server struct{ repo *store.Repository }

// Handler handles orders.
type Handler interface{ Handle() error }

func Serve() error {
	go func() {}()
	return http.ListenAndServe(":0", nil)
}

func (s *Server) handleOrder(ch chan int) { ch <- 1 }
`,
		"api/server_test.go": "package api\n",
		"store/store.go": `package store

// Repository keeps orders.
type Repository struct{}

// OrderService is the service.
type OrderService struct{ R *Repository }

func NewRepository() *Repository { return &Repository{} }

const SYS_ORDERS, maxOrders = 1, 2
`,
		"codec/codec.go": `package codec

import (
	"encoding/base64"
	"encoding/json"
)

func Encode(v any) ([]byte, error) { b, err := json.Marshal(v); return []byte(base64.StdEncoding.EncodeToString(b)), err }
`,
		"testdata/ignored/x.go": "package ignored\n",
		"vendor/other/x.go":     "package other\n",
		"onlytests/x_test.go":   "package onlytests\n",
	})

	pkgs, err := Discover(context.Background(), []string{root}, DiscoverOptions{})
	require.NoError(t, err)
	byPath := map[string]*Package{}
	var paths []string
	for _, p := range pkgs {
		byPath[p.Path] = p
		paths = append(paths, p.Path)
	}
	require.Equal(t, []string{"example.com/shop/api", "example.com/shop/cmd/shop", "example.com/shop/codec", "example.com/shop/store"}, paths)

	api := byPath["example.com/shop/api"]
	require.Equal(t, "api", api.Name)
	require.Equal(t, 1, api.Files)
	require.Equal(t, 1, api.TestFiles)
	require.Equal(t, []string{"example.com/shop/store", "net/http"}, api.Imports)
	require.Equal(t, map[string]int{"external": 1, "network": 1}, api.ImportCategories)
	require.Equal(t, 2, api.Types)
	require.Equal(t, 1, api.Interfaces)
	require.Equal(t, 1, api.Structs)
	require.Equal(t, 1, api.Methods)
	require.Equal(t, 1, api.PointerReceivers)
	require.Equal(t, 1, api.ErrorResults)
	require.Equal(t, 1, api.GoStmts)
	require.Equal(t, 1, api.ChanOps, "the send; the parameter's channel type is outside the body")
	require.Equal(t, 1, api.FanIn, "cmd/shop imports it")
	require.Equal(t, 1, api.FanOut, "it imports store")
	require.Positive(t, api.Markers["server"])
	require.Positive(t, api.Markers["handler"])

	st := byPath["example.com/shop/store"]
	require.Equal(t, 1, st.Constructors)
	require.Equal(t, 2, st.Consts)
	require.Equal(t, 1, st.CapsConsts)
	require.Equal(t, 1, st.FanIn)

	require.Equal(t, "command", Detect(byPath["example.com/shop/cmd/shop"]))
	require.Equal(t, "network_service", Detect(api))
	require.Equal(t, "layered_service", Detect(st))
	require.Equal(t, "codec", Detect(byPath["example.com/shop/codec"]))

	require.Len(t, rawFeatures(api), len(FeatureNames))
}

func TestDiscoverNamesStandardLibraryPackagesByImportPath(t *testing.T) {
	t.Parallel()
	root := writeTree(t, map[string]string{
		"src/go.mod":              "module std\n",
		"src/bytes/bytes.go":      "package bytes\n",
		"src/net/http/http.go":    "package http\n\nimport \"bytes\"\n",
		"src/cmd/go.mod":          "module cmd\n",
		"src/cmd/vet/main.go":     "package main\n\nimport \"net/http\"\n",
		"src/cmd/internal/x/x.go": "package x\n",
	})
	pkgs, err := Discover(context.Background(), []string{filepath.Join(root, "src")}, DiscoverOptions{})
	require.NoError(t, err)
	var paths []string
	for _, p := range pkgs {
		paths = append(paths, p.Path)
	}
	require.Equal(t, []string{"bytes", "cmd/internal/x", "cmd/vet", "net/http"}, paths)
	require.Equal(t, 1, pkgs[0].FanIn)
	require.Equal(t, 1, pkgs[3].FanIn)

	_, err = Discover(context.Background(), []string{filepath.Join(root, "nope")}, DiscoverOptions{})
	require.ErrorContains(t, err, "is not a readable directory")
}

func TestDiscoverReadsAModuleCacheOncePerPackage(t *testing.T) {
	t.Parallel()
	root := writeTree(t, map[string]string{
		"example.com/lib@v1.0.0/go.mod":                 "module example.com/lib\n",
		"example.com/lib@v1.0.0/lib.go":                 "package lib\n",
		"example.com/lib@v1.2.0/go.mod":                 "module example.com/lib\n",
		"example.com/lib@v1.2.0/lib.go":                 "package lib\n\nfunc New() {}\n",
		"example.com/lib@v1.2.0/sub/sub.go":             "package sub\n\nimport \"example.com/lib\"\n",
		"github.com/!burnt!sushi/toml@v0.3.1/decode.go": "package toml\n",
		"cache/download/example.com/lib/@v/v1.0.0.mod":  "module example.com/lib\n",
		"cache/download/stray/x.go":                     "package stray\n",
	})
	pkgs, err := Discover(context.Background(), []string{root}, DiscoverOptions{})
	require.NoError(t, err)
	var paths []string
	for _, p := range pkgs {
		paths = append(paths, p.Path)
	}
	require.Equal(t, []string{"example.com/lib", "example.com/lib/sub", "github.com/BurntSushi/toml"}, paths,
		"one package per import path, versions and case escapes gone, the download cache skipped")
	require.Zero(t, pkgs[0].Funcs, "the first version in walking order")
	require.Equal(t, 1, pkgs[0].FanIn)
}

func TestDefaultRootsAreTheStandardLibraryAndTheModuleCache(t *testing.T) {
	// Not parallel: it sets the environment.
	goroot, cache := t.TempDir(), t.TempDir()
	t.Setenv("GOROOT", goroot)
	t.Setenv("GOMODCACHE", cache)
	roots, err := defaultRoots(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(goroot, "src"), cache}, roots)

	t.Setenv("GOMODCACHE", filepath.Join(cache, "gone"))
	roots, err = defaultRoots(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(goroot, "src")}, roots, "no module cache, the standard library alone")
}

func TestTheDefaultCorpusHoldsThirdPartyCode(t *testing.T) {
	t.Parallel()
	roots, err := defaultRoots(context.Background())
	require.NoError(t, err)
	require.Len(t, roots, 2, "this module's dependencies are in the module cache, or it would not build")
	std, err := Discover(context.Background(), roots[:1], DiscoverOptions{})
	require.NoError(t, err)
	all, err := Discover(context.Background(), roots, DiscoverOptions{})
	require.NoError(t, err)
	paths := map[string]bool{}
	for _, p := range all {
		paths[p.Path] = true
	}
	t.Logf("default corpus: %d packages, %d of them the standard library's", len(all), len(std))
	require.True(t, paths["github.com/jackc/pgx/v5"], "a dependency of this module")
	require.True(t, paths["github.com/riverqueue/river"])
	require.Greater(t, len(all), len(std)+100)
}
