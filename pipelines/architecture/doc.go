// Package architecture is the architecture_learning workflow: it scans real Go source trees,
// labels each package with an architecture pattern by documented rules (Detect), and trains a
// softmax classifier to recognise those patterns from how packages are built, features that
// are not the rules' inputs, so that what it learns is measurable on held-out packages.
//
// # Steps
//
//	pattern_discovery  cpu, ≤2 at once, 60 s   parse every package under the roots → packages artifact
//	pattern_analysis   cpu, ≤3 at once, 30 s   Detect labels, stable holdout, validation rows and folds, standardized features
//	model_training     gpu, ≤1 at once, 180 s  softmax classifier (loss curve on the validation rows), then k-fold cross-validation
//	model_validation   cpu, ≤2 at once, 30 s   held-out and cross-validated accuracy, macro-F1, per-class F1, with 95% intervals
//	model_deployment   cpu, ≤1 at once, 60 s   ml.models (champion/challenger), ml.package_patterns
//
// Run input (all optional): roots (absolute paths; default the standard library, $GOROOT/src,
// and the Go module cache, $GOMODCACHE: the third-party code already on the machine, each from
// the environment or `go env`), max_packages (5000, in import path order), min_packages (30),
// held_out (0.25), hidden_units (0: softmax regression; n adds a ReLU layer of n units with
// dropout 0.1), epochs (150), batch_size (32), learning_rate (0.003), seed (0), folds (5),
// min_improvement (0.01), checkpoint_every (10), checkpoint_seconds (60): model_training
// checkpoints and resumes as package ml says (Checkpoints).
//
// # Facts
//
// Discovery parses every non-test file with go/parser and records per package (Package):
// files, test files, assembly files, lines and comment lines; imports, and their counts by
// ImportCategory; declared types, exported types, interfaces, structs, functions, methods,
// constructors, constants (and C-style ones), variables, generic declarations, functions
// returning error, lines of function bodies; go, select, defer and switch statements, channel
// operations, panics and uses of uintptr; fan-in and fan-out within the scanned packages; and
// naming markers (handler, server, client, service, repository, middleware, codec, stream,
// parser, test) found in declared names and file names.
//
// # Labels and features
//
// Detect assigns one of Patterns by ordered rules over the package name, specific imports,
// import categories, naming markers and the share of exported interfaces. The classifier's
// inputs (FeatureNames) are 29 structural measures: size, API shape, control flow and
// coupling. Some correlate with a rule's inputs (packages that bind to the platform use
// uintptr and C-style constants), none restates one, so the classifier has to generalise,
// and its held-out accuracy says how recognisable each pattern is from structure alone.
//
// # Rows and figures
//
// Every package belongs for good to the holdout or the training side, by a hash of its import
// path (ml.Holdout, share held_out): no seed or root list moves it. A tenth of the training side,
// by another hash, is the validation rows the training measures its loss on after every epoch.
// The classifier is evaluated on the holdout: accuracy, macro-F1, the confusion matrix and each
// class's precision, recall and F1, each with a 95% bootstrap interval, next to the majority
// baseline (the training side's most common pattern). The holdout of a few hundred packages
// leaves small classes with a handful of rows, so the training side is also cross-validated:
// folds (5) more classifiers, each trained on all folds but one (by a third hash) and
// predicting that one, so every training-side package is predicted once by a model it did not
// train, with the baseline of each fold's majority. A class with fewer than ml.MinSupport rows
// in an evaluation is reported as too small to evaluate, with its count, rather than given an
// F1 that one package would swing.
//
// # Deployment rule: champion and challenger
//
// The candidate is compared with the majority baseline and the active model on the same
// held-out packages by a paired bootstrap of its macro-F1 gain (ml.Rule). It must beat the
// baseline with 95% confidence. It replaces the active model when none is active, when the
// active model cannot be compared (no comparable holdout, or features of another version), or
// when, on the held-out packages both models' holdouts hold, its macro-F1 is higher by more
// than min_improvement (0.01) with 95% confidence. The decision, with both estimates and their
// intervals, is stored in the model's metrics. Afterwards every package of the run gets the
// active model's pattern and probability in ml.package_patterns, next to the rule's.
package architecture
