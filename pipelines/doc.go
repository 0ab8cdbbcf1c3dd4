// Package pipelines holds what QuantumFlow runs: workflow definitions as data, and the step
// handlers behind them.
//
// A Workflow is registered in the database (qflow.register_workflow) by `qflow migrate` and at
// every worker start; the database validates it and versions it. The same Registry tells the
// worker which Go function handles each (workflow, step). Sub-packages hold the workflows:
// probe (tiny workflows for tests and benchmarks) and the ML pipelines.
package pipelines
