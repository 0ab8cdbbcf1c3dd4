package architecture

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// Package is what discovery learns about one Go package from its source.
type Package struct {
	// Path is the import path; Name the package clause's name.
	Path string `json:"path"`
	Name string `json:"name"`

	Files        int `json:"files"`
	TestFiles    int `json:"test_files"`
	AsmFiles     int `json:"asm_files"`
	Lines        int `json:"lines"`
	CommentLines int `json:"comment_lines"`

	// Imports are the distinct imports of the non-test files, sorted.
	Imports []string `json:"imports"`
	// ImportCategories counts Imports by ImportCategory.
	ImportCategories map[string]int `json:"import_categories"`

	Types              int `json:"types"`
	ExportedTypes      int `json:"exported_types"`
	Interfaces         int `json:"interfaces"`
	ExportedInterfaces int `json:"exported_interfaces"`
	Structs            int `json:"structs"`
	Funcs              int `json:"funcs"`
	ExportedFuncs      int `json:"exported_funcs"`
	Methods            int `json:"methods"`
	ExportedMethods    int `json:"exported_methods"`
	// Constructors are exported functions named New...
	Constructors     int `json:"constructors"`
	PointerReceivers int `json:"pointer_receivers"`
	Consts           int `json:"consts"`
	// CapsConsts are constants named in upper case with underscores (SYS_READ, AF_INET),
	// the style of values copied from C headers.
	CapsConsts int `json:"caps_consts"`
	Vars       int `json:"vars"`
	// GenericDecls are functions and types with type parameters.
	GenericDecls int `json:"generic_decls"`
	// ErrorResults are functions and methods whose last result is an error.
	ErrorResults int `json:"error_results"`
	// FuncLines sums the lines of function and method bodies.
	FuncLines int `json:"func_lines"`
	GoStmts   int `json:"go_stmts"`
	ChanOps   int `json:"chan_ops"`
	Selects   int `json:"selects"`
	Defers    int `json:"defers"`
	Panics    int `json:"panics"`
	Switches  int `json:"switches"`
	// Uintptrs counts uses of the identifier uintptr: addresses as integers.
	Uintptrs int `json:"uintptrs"`

	// FanIn counts the discovered packages that import this one; FanOut the discovered
	// packages this one imports.
	FanIn  int `json:"fan_in"`
	FanOut int `json:"fan_out"`

	// Markers count naming markers (MarkerWords) in declared names and file names.
	Markers map[string]int `json:"markers"`
}

// markerWords maps a naming marker to the lower-case fragments that count for it.
var markerWords = []struct {
	marker string
	words  []string
}{
	{"handler", []string{"handler", "handle"}},
	{"server", []string{"server", "serve", "listen"}},
	{"client", []string{"client", "dial"}},
	{"service", []string{"service"}},
	{"repository", []string{"repository", "repo", "store"}},
	{"middleware", []string{"middleware"}},
	{"codec", []string{"encode", "decode", "marshal", "unmarshal", "compress"}},
	{"stream", []string{"reader", "writer"}},
	{"parser", []string{"parse", "lexer", "scanner", "token", "syntax"}},
	{"test", []string{"test", "mock", "fake", "stub"}},
}

// MarkerNames lists the naming markers discovery counts.
func MarkerNames() []string {
	out := make([]string, len(markerWords))
	for i, m := range markerWords {
		out[i] = m.marker
	}
	return out
}

func countMarkers(into map[string]int, name string) {
	lower := strings.ToLower(name)
	for _, m := range markerWords {
		for _, w := range m.words {
			if strings.Contains(lower, w) {
				into[m.marker]++
				break
			}
		}
	}
}

// ImportCategory sorts an import path into a broad category: cgo, external (a domain-like
// first element), internal (internal/ or cmd/ paths), network, encoding, concurrency,
// system, testing, tooling, crypto, algorithms, text, core, database or other.
func ImportCategory(path string) string {
	first, _, _ := strings.Cut(path, "/")
	has := func(prefixes ...string) bool {
		for _, p := range prefixes {
			if path == p || strings.HasPrefix(path, p+"/") {
				return true
			}
		}
		return false
	}
	switch {
	case path == "C":
		return "cgo"
	case strings.Contains(first, "."):
		return "external"
	case first == "internal" || first == "cmd" || first == "vendor" || strings.Contains(path, "/internal/") || strings.HasSuffix(path, "/internal"):
		return "internal"
	case has("net", "crypto/tls"):
		return "network"
	case has("encoding", "compress", "archive", "hash", "image", "mime"):
		return "encoding"
	case has("sync", "context"):
		return "concurrency"
	case has("os", "syscall", "unsafe", "runtime", "path/filepath", "io/fs", "plugin"):
		return "system"
	case has("testing"):
		return "testing"
	case has("go", "debug", "reflect", "text/template", "html/template"):
		return "tooling"
	case has("crypto"):
		return "crypto"
	case has("math", "sort", "container", "slices", "maps", "cmp", "iter"):
		return "algorithms"
	case has("strings", "bytes", "strconv", "unicode", "regexp", "text", "html", "path"):
		return "text"
	case has("io", "bufio", "fmt", "errors", "log", "time", "flag", "embed", "expvar", "builtin"):
		return "core"
	case has("database"):
		return "database"
	}
	return "other"
}

// DiscoverOptions limit a scan.
type DiscoverOptions struct {
	// MaxPackages stops the scan after this many packages (in path order); 0 means no limit.
	MaxPackages int
	// Workers parse files in parallel [GOMAXPROCS].
	Workers int
}

// Discover scans the Go source trees under roots and returns the facts of every package,
// sorted by import path. Directories named testdata or vendor, and those starting with . or _,
// are skipped, as Go's tooling does, and so is the download cache of a Go module cache
// (GOMODCACHE/cache: zips, not source). Import paths come from the nearest go.mod above each
// package (module "std", the standard library, has no prefix); without one the path is
// relative to its root, less the module cache's @version suffixes and case escapes. A path
// found twice (two versions of a module in the cache) is scanned once, the first in walking
// order: near-copies of one package would otherwise sit on both sides of a split. Fan-in and
// fan-out count only packages found in the scan.
func Discover(ctx context.Context, roots []string, o DiscoverOptions) ([]*Package, error) {
	type job struct{ dir, path string }
	var jobs []job
	seen := map[string]bool{}
	for _, root := range roots {
		abs, err := filepath.Abs(root)
		if err != nil {
			return nil, fmt.Errorf("root %q: %w", root, err)
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("root %q is not a readable directory", root)
		}
		mods := &moduleFinder{cache: map[string]module{}}
		err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				return nil
			}
			name := d.Name()
			if p != abs && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			if filepath.Dir(p) == abs && name == "cache" && isDir(filepath.Join(p, "download")) {
				return filepath.SkipDir
			}
			if !hasGoFiles(p) {
				return nil
			}
			ip := mods.importPath(abs, p)
			if !seen[ip] {
				seen[ip] = true
				jobs = append(jobs, job{p, ip})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walking %s: %w", root, err)
		}
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].path < jobs[j].path })
	if o.MaxPackages > 0 && len(jobs) > o.MaxPackages {
		jobs = jobs[:o.MaxPackages]
	}

	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	pkgs := make([]*Package, len(jobs))
	errs := make([]error, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				pkgs[i], errs[i] = scanPackage(jobs[i].dir, jobs[i].path)
			}
		}()
	}
feed:
	for i := range jobs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scanning packages: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	// Packages with only test files (or only ignored files) are not packages to learn about.
	out := pkgs[:0]
	for _, p := range pkgs {
		if p != nil {
			out = append(out, p)
		}
	}
	byPath := map[string]*Package{}
	for _, p := range out {
		byPath[p.Path] = p
	}
	for _, p := range out {
		for _, imp := range p.Imports {
			if q, ok := byPath[imp]; ok {
				p.FanOut++
				q.FanIn++
			}
		}
	}
	return out, nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func hasGoFiles(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".go") {
			return true
		}
	}
	return false
}

type module struct {
	dir, path string
}

// moduleFinder finds the module a directory belongs to, caching per directory.
type moduleFinder struct {
	cache map[string]module
}

func (f *moduleFinder) find(dir string) module {
	if m, ok := f.cache[dir]; ok {
		return m
	}
	var m module
	if path, ok := modulePath(filepath.Join(dir, "go.mod")); ok {
		m = module{dir: dir, path: path}
	} else if parent := filepath.Dir(dir); parent != dir {
		m = f.find(parent)
	}
	f.cache[dir] = m
	return m
}

func (f *moduleFinder) importPath(root, dir string) string {
	m := f.find(dir)
	base, prefix := root, ""
	if m.dir != "" {
		base = m.dir
		if m.path != "std" {
			prefix = m.path
		}
	}
	rel, err := filepath.Rel(base, dir)
	if err != nil || rel == "." {
		rel = ""
	}
	rel = filepath.ToSlash(rel)
	switch {
	case prefix == "" && m.dir == "":
		rel = unversioned(rel)
		if rel == "" {
			return filepath.Base(dir)
		}
		return rel
	case prefix == "":
		if rel == "" {
			return filepath.Base(dir)
		}
		return rel
	case rel == "":
		return prefix
	}
	return prefix + "/" + rel
}

// unversioned is a path of the module cache as an import path: without the @version of a
// module's directory (golang.org/x/text@v0.3.0/unicode → golang.org/x/text/unicode) and with
// its case escapes undone (github.com/!burnt!sushi → github.com/BurntSushi).
func unversioned(rel string) string {
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		if at := strings.IndexByte(p, '@'); at >= 0 {
			p = p[:at]
		}
		var b strings.Builder
		for j := 0; j < len(p); j++ {
			if p[j] == '!' && j+1 < len(p) {
				j++
				b.WriteString(strings.ToUpper(p[j : j+1]))
				continue
			}
			b.WriteByte(p[j])
		}
		parts[i] = b.String()
	}
	return strings.Join(parts, "/")
}

// modulePath reads the module line of a go.mod file.
func modulePath(gomod string) (string, bool) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if rest, ok := strings.CutPrefix(line, "module"); ok {
			rest = strings.TrimSpace(rest)
			if p, err := strconv.Unquote(rest); err == nil {
				return p, true
			}
			return rest, rest != ""
		}
	}
	return "", false
}

// scanPackage parses the Go files of one directory. It returns nil for a directory without
// non-test Go files. Files that do not parse are counted but contribute no declarations:
// real trees hold deliberately broken or generator-only files.
func scanPackage(dir, importPath string) (*Package, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	p := &Package{Path: importPath, ImportCategories: map[string]int{}, Markers: map[string]int{}}
	fset := token.NewFileSet()
	imports := map[string]bool{}
	names := map[string]int{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".s"):
			p.AsmFiles++
			continue
		case !strings.HasSuffix(name, ".go"):
			continue
		case strings.HasSuffix(name, "_test.go"):
			p.TestFiles++
			continue
		}
		src, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, name), err)
		}
		p.Files++
		p.Lines += strings.Count(string(src), "\n")
		countMarkers(p.Markers, strings.TrimSuffix(name, ".go"))
		f, err := parser.ParseFile(fset, name, src, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil || f == nil {
			continue
		}
		names[f.Name.Name]++
		for _, c := range f.Comments {
			p.CommentLines += fset.Position(c.End()).Line - fset.Position(c.Pos()).Line + 1
		}
		for _, imp := range f.Imports {
			if path, err := strconv.Unquote(imp.Path.Value); err == nil {
				imports[path] = true
			}
		}
		p.scanDecls(fset, f)
	}
	if p.Files == 0 {
		return nil, nil
	}
	// A directory may mix package x and a generator's package main: the most common name wins.
	for n, c := range names {
		if c > names[p.Name] || (c == names[p.Name] && n < p.Name) {
			p.Name = n
		}
	}
	for imp := range imports {
		p.Imports = append(p.Imports, imp)
		p.ImportCategories[ImportCategory(imp)]++
	}
	sort.Strings(p.Imports)
	return p, nil
}

func exported(name string) bool {
	for _, r := range name {
		return unicode.IsUpper(r)
	}
	return false
}

func (p *Package) scanDecls(fset *token.FileSet, f *ast.File) {
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					p.Types++
					countMarkers(p.Markers, s.Name.Name)
					if exported(s.Name.Name) {
						p.ExportedTypes++
					}
					if s.TypeParams != nil && len(s.TypeParams.List) > 0 {
						p.GenericDecls++
					}
					switch s.Type.(type) {
					case *ast.InterfaceType:
						p.Interfaces++
						if exported(s.Name.Name) {
							p.ExportedInterfaces++
						}
					case *ast.StructType:
						p.Structs++
					}
				case *ast.ValueSpec:
					if d.Tok == token.CONST {
						p.Consts += len(s.Names)
						for _, n := range s.Names {
							if strings.Contains(n.Name, "_") && strings.ToUpper(n.Name) == n.Name {
								p.CapsConsts++
							}
						}
					} else {
						p.Vars += len(s.Names)
					}
				}
			}
		case *ast.FuncDecl:
			name := d.Name.Name
			countMarkers(p.Markers, name)
			if d.Recv != nil && len(d.Recv.List) > 0 {
				p.Methods++
				if exported(name) {
					p.ExportedMethods++
				}
				if _, ok := d.Recv.List[0].Type.(*ast.StarExpr); ok {
					p.PointerReceivers++
				}
			} else {
				p.Funcs++
				if exported(name) {
					p.ExportedFuncs++
					if strings.HasPrefix(name, "New") {
						p.Constructors++
					}
				}
			}
			if d.Type.TypeParams != nil && len(d.Type.TypeParams.List) > 0 {
				p.GenericDecls++
			}
			if res := d.Type.Results; res != nil && len(res.List) > 0 {
				if id, ok := res.List[len(res.List)-1].Type.(*ast.Ident); ok && id.Name == "error" {
					p.ErrorResults++
				}
			}
			if d.Body != nil {
				p.FuncLines += fset.Position(d.Body.End()).Line - fset.Position(d.Body.Pos()).Line + 1
				p.scanBody(d.Body)
			}
		}
	}
}

func (p *Package) scanBody(body *ast.BlockStmt) {
	ast.Inspect(body, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.GoStmt:
			p.GoStmts++
		case *ast.SendStmt, *ast.ChanType:
			p.ChanOps++
		case *ast.UnaryExpr:
			if x.Op == token.ARROW {
				p.ChanOps++
			}
		case *ast.SelectStmt:
			p.Selects++
		case *ast.DeferStmt:
			p.Defers++
		case *ast.SwitchStmt, *ast.TypeSwitchStmt:
			p.Switches++
		case *ast.CallExpr:
			if id, ok := x.Fun.(*ast.Ident); ok && id.Name == "panic" {
				p.Panics++
			}
		case *ast.Ident:
			if x.Name == "uintptr" {
				p.Uintptrs++
			}
		}
		return true
	})
}
