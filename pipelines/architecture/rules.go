package architecture

import (
	"slices"
	"strings"
)

// Patterns are the architecture patterns the detector assigns, in rule order; a model's
// output unit k is Patterns[k].
var Patterns = []string{
	"command",
	"test_support",
	"network_service",
	"platform_binding",
	"language_tooling",
	"codec",
	"layered_service",
	"abstraction",
	"algorithm_library",
	"library",
}

// PatternIndex returns the index of a pattern in Patterns, or -1.
func PatternIndex(name string) int { return slices.Index(Patterns, name) }

// Detect labels a package with its architecture pattern by the first rule that holds:
//
//	command            the package is main
//	test_support       its name ends in "test" or "testing", or non-test files import testing
//	network_service    it imports a network package and names a server, handler or client
//	platform_binding   it imports syscall, C, internal/syscall/... or golang.org/x/sys/..., has
//	                   assembly files, or imports unsafe together with runtime internals
//	language_tooling   it imports go/... or debug/..., or ≥ 3 declared names are about parsing
//	codec              ≥ 2 encoding imports, or ≥ 3 encode/decode/marshal/compress names
//	layered_service    ≥ 2 of the handler, service and repository markers
//	abstraction        ≥ 2 exported interfaces, at least 40% of its exported types
//	algorithm_library  ≥ 3 exported functions and imports only from the algorithms, text, core
//	                   and internal categories
//	library            anything else
//
// The rules read the package name, specific imports and naming markers; the classifier sees
// none of those (see Features), so what it learns is how such packages are built.
func Detect(p *Package) string {
	imports := func(paths ...string) bool {
		for _, want := range paths {
			if slices.Contains(p.Imports, want) {
				return true
			}
		}
		return false
	}
	importsUnder := func(prefixes ...string) bool {
		for _, imp := range p.Imports {
			for _, pre := range prefixes {
				if strings.HasPrefix(imp, pre+"/") || imp == pre {
					return true
				}
			}
		}
		return false
	}
	cat := p.ImportCategories
	switch {
	case p.Name == "main":
		return "command"
	case strings.HasSuffix(p.Name, "test") || strings.HasSuffix(p.Name, "testing") || imports("testing"):
		return "test_support"
	case cat["network"] > 0 && p.Markers["server"]+p.Markers["handler"]+p.Markers["client"] > 0:
		return "network_service"
	case imports("syscall", "C") || importsUnder("internal/syscall", "golang.org/x/sys") || p.AsmFiles > 0 ||
		(imports("unsafe") && importsUnder("runtime", "internal/runtime")):
		return "platform_binding"
	case importsUnder("go", "debug") || p.Markers["parser"] >= 3:
		return "language_tooling"
	case cat["encoding"] >= 2 || p.Markers["codec"] >= 3:
		return "codec"
	case btoi(p.Markers["handler"] > 0)+btoi(p.Markers["service"] > 0)+btoi(p.Markers["repository"] > 0) >= 2:
		return "layered_service"
	case p.ExportedInterfaces >= 2 && 10*p.ExportedInterfaces >= 4*p.ExportedTypes:
		return "abstraction"
	case p.ExportedFuncs >= 3 && onlyCategories(cat, "algorithms", "text", "core", "internal"):
		return "algorithm_library"
	}
	return "library"
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func onlyCategories(cat map[string]int, allowed ...string) bool {
	for c, n := range cat {
		if n > 0 && !slices.Contains(allowed, c) {
			return false
		}
	}
	return true
}
