package architecture

import (
	"fmt"
	"math"
	"strings"

	"github.com/quantumflow/qflow/pipelines/ml"
)

// featureVersion changes whenever the meaning of the features changes.
const featureVersion = 1

// FeatureNames are the classifier's inputs, in order. They describe how a package is built
// (size, shape of its API, control flow, coupling), never the inputs of the rules (its name,
// which packages it imports, naming markers), so the classifier cannot just replay Detect.
var FeatureNames = []string{
	"log_files",             // ln(1 + non-test files)
	"log_lines",             // ln(1 + lines)
	"test_file_share",       // test files / all Go files
	"comment_share",         // comment lines / lines
	"log_funcs",             // ln(1 + functions and methods)
	"method_share",          // methods / (functions + methods)
	"exported_func_share",   // exported functions and methods / all
	"log_types",             // ln(1 + declared types)
	"struct_share",          // struct types / types
	"constructors_per_type", // New... functions / types
	"pointer_receiver_share",
	"log_func_lines",  // ln(1 + mean lines per function body)
	"go_per_func",     // go statements / functions
	"chan_per_func",   // channel operations and types / functions
	"select_per_func", // select statements / functions
	"defer_per_func",  // defer statements / functions
	"panic_per_func",  // panic calls / functions
	"switch_per_func", // switch statements / functions
	"generic_share",   // generic declarations / (types + functions)
	"error_result_share",
	"log_consts",
	"caps_const_share", // C-style constant names / constants
	"log_vars",
	"uintptr_per_func",    // uses of uintptr / functions
	"exported_type_share", // exported types / types
	"log_fan_in",          // ln(1 + discovered packages importing it)
	"log_fan_out",         // ln(1 + discovered packages it imports)
	"log_imports",         // ln(1 + distinct imports)
	"path_depth",          // elements in the import path
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func lg(n int) float64 { return math.Log1p(float64(max(n, 0))) }

// rawFeatures returns the unstandardized features of p, in FeatureNames order.
func rawFeatures(p *Package) []float64 {
	fns := p.Funcs + p.Methods
	return []float64{
		lg(p.Files),
		lg(p.Lines),
		ratio(p.TestFiles, p.Files+p.TestFiles),
		ratio(p.CommentLines, p.Lines),
		lg(fns),
		ratio(p.Methods, fns),
		ratio(p.ExportedFuncs+p.ExportedMethods, fns),
		lg(p.Types),
		ratio(p.Structs, p.Types),
		ratio(p.Constructors, p.Types),
		ratio(p.PointerReceivers, p.Methods),
		math.Log1p(ratio(p.FuncLines, fns)),
		ratio(p.GoStmts, fns),
		ratio(p.ChanOps, fns),
		ratio(p.Selects, fns),
		ratio(p.Defers, fns),
		ratio(p.Panics, fns),
		ratio(p.Switches, fns),
		ratio(p.GenericDecls, p.Types+fns),
		ratio(p.ErrorResults, fns),
		lg(p.Consts),
		ratio(p.CapsConsts, p.Consts),
		lg(p.Vars),
		ratio(p.Uintptrs, max(fns, 1)),
		ratio(p.ExportedTypes, p.Types),
		lg(p.FanIn),
		lg(p.FanOut),
		lg(len(p.Imports)),
		float64(strings.Count(p.Path, "/") + 1),
	}
}

// FeatureSpec is stored with a model as its normalization: feature names, their training mean
// and standard deviation, and the class names of the output units.
type FeatureSpec struct {
	Version  int       `json:"version"`
	Names    []string  `json:"features"`
	Mean     []float64 `json:"mean"`
	Std      []float64 `json:"std"`
	Patterns []string  `json:"patterns"`
}

// FitSpec computes the standardization of the training packages.
func FitSpec(train []*Package) FeatureSpec {
	d := len(FeatureNames)
	s := FeatureSpec{Version: featureVersion, Names: append([]string(nil), FeatureNames...), Mean: make([]float64, d), Std: make([]float64, d), Patterns: append([]string(nil), Patterns...)}
	n := float64(max(len(train), 1))
	rows := make([][]float64, len(train))
	for i, p := range train {
		rows[i] = rawFeatures(p)
		for j, v := range rows[i] {
			s.Mean[j] += v / n
		}
	}
	for j := range s.Std {
		var ss float64
		for _, r := range rows {
			ss += (r[j] - s.Mean[j]) * (r[j] - s.Mean[j])
		}
		s.Std[j] = 1
		if std := math.Sqrt(ss / n); std > 1e-9 {
			s.Std[j] = std
		}
	}
	return s
}

// Encode returns the standardized features of pkgs, one row per package.
func (s *FeatureSpec) Encode(pkgs []*Package) *ml.Matrix {
	m := ml.NewMatrix(len(pkgs), len(s.Names))
	for i, p := range pkgs {
		row := m.Row(i)
		for j, v := range rawFeatures(p) {
			row[j] = (v - s.Mean[j]) / s.Std[j]
		}
	}
	return m
}

// check reports whether the spec encodes today's features for a model of these dimensions.
func (s *FeatureSpec) check(inputs, outputs int) error {
	if s.Version != featureVersion {
		return fmt.Errorf("feature spec version %d, this build encodes version %d", s.Version, featureVersion)
	}
	if len(s.Names) != len(FeatureNames) || len(s.Mean) != len(FeatureNames) || len(s.Std) != len(FeatureNames) || inputs != len(FeatureNames) {
		return fmt.Errorf("feature spec and model disagree on the %d features", len(FeatureNames))
	}
	if len(s.Patterns) != outputs {
		return fmt.Errorf("feature spec names %d patterns, the model has %d outputs", len(s.Patterns), outputs)
	}
	return nil
}
