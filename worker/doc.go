// Package worker executes QuantumFlow steps: a River client whose generic qflow_step worker
// claims a step in SQL, runs its Go handler under the step timeout, and records the result
// in the same transaction that completes the River job.
//
// The database owns every decision: what is ready, retries and their backoff, concurrency
// limits, run completion. A worker only claims, executes and reports. Worker classes are
// River queues; a process serves the classes it is given. The elected leader also runs the
// sweeper (qflow.sweep) every second, which retries steps of dead workers and times out runs.
package worker
