// Package architecture is the architecture_learning workflow: it scans real Go source trees,
// labels each package with an architecture pattern by documented rules (Detect), and trains a
// softmax classifier to recognise those patterns from how packages are built, features that
// are not the rules' inputs, so that what it learns is measurable on held-out packages.
//
// # Steps
//
//	pattern_discovery  cpu, ≤2 at once, 60 s   parse every package under the roots → packages artifact
//	pattern_analysis   cpu, ≤3 at once, 30 s   Detect labels, stratified split, standardized features
//	model_training     gpu, ≤1 at once, 180 s  softmax classifier, cross-entropy, Adam
//	model_validation   cpu, ≤2 at once, 30 s   accuracy, macro-F1, confusion vs the majority class
//	model_deployment   cpu, ≤1 at once, 60 s   ml.models (activate only if it wins), ml.package_patterns
//
// Run input (all optional): roots (absolute paths; default the standard library, $GOROOT/src
// or `go env GOROOT`), max_packages (5000), min_packages (30), held_out (0.25), hidden_units
// (0: softmax regression; n adds a ReLU layer of n units with dropout 0.1), epochs (150),
// batch_size (32), learning_rate (0.003), seed (0), checkpoint_every (10), checkpoint_seconds
// (60): model_training checkpoints and resumes as package ml says (Checkpoints).
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
// # Deployment rule
//
// A classifier is activated only if it beats the majority baseline (higher macro-F1, or equal
// macro-F1 and higher accuracy) and either no model is active or it beats the active model the
// same way, both scored on this run's held-out packages. Afterwards every package of the run
// gets the active model's pattern and probability in ml.package_patterns, next to the rule's.
package architecture
