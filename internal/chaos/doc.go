// Package chaos runs QuantumFlow under load while breaking things, then checks from the
// tables alone that the engine kept its promises. cmd/qflow-chaos is its command line
// (`make chaos`); TestChaosShort runs the short mode inside `go test ./...`.
//
// # What it does
//
// Unless given a server (QFLOW_CHAOS_SERVER_URL), it starts a Postgres cluster of its own
// with .ci/postgres.sh on a free port and a fresh data directory, so that restarting it
// disturbs nobody else's tests. It migrates a database with `qflow migrate` (which creates
// the roles), makes one login in qflow_worker and one in qflow_trigger, and starts several
// `qflow worker` processes as the worker login, each with its own --id and
// --metrics-addr 127.0.0.1:0, each reaching Postgres through a proxy of its own in a toxiproxy
// server (the Makefile builds it from the Go module proxy; network.go). Loaders, one connection each as the trigger login, insert probe
// runs with plain SQL: sleeps, retries, permanent failures, panics, hangs past the step
// timeout, runs of probe_limited (a step limited to two at once), runs they cancel, and long
// runs: probe_limited's c is given a timeout of three minutes at setup, as a training step on
// a scarce GPU would have, and 3% of runs ask it to work 2-5 s. 12% are probe_map runs of 0-20
// elements (some working per element, with an element that fails once or for good, or
// cancelled while elements run) and 10% probe_branch runs (big, small or neither, some
// retrying a step). Every insert carries an idempotency key, so an insert whose answer was
// lost to a fault is simply sent again.
//
// Meanwhile faults are injected: SIGKILL of the worker running the most long steps, then the
// most steps (restarted a moment later under a new id), SIGTERM (a graceful stop, which must exit 0, then a
// restart), pg_terminate_backend of worker connections, Postgres restarts (pg_ctl -m fast
// and -m immediate, the latter a crash and WAL replay), duplicated and late completions:
// completions and failures sent through finish_steps with attempts that already finished or
// were superseded, which must change nothing, and network faults on the proxy of the busiest
// worker (in the full mode, one in three on every worker's): latency, a bandwidth limit,
// connections cut after 5,000 bytes, resets, the host down, and black holes that swallow
// everything and close nothing for up to 40 s, past the engine's 15 s deadline on a call. The
// hanging and panicking handlers come from the probe input. Meanwhile a worker is started
// behind a black hole, to time its first "database unavailable; retrying" and its exit.
//
// When the load stops, it waits for every run to end, then checks:
//
//   - lost: every run a loader was told was inserted exists; in every ended run, each
//     succeeded step row (map elements included) has the output the probe handlers compute
//     from its input (expect.go: probe_map's squares and their sum, probe_branch's path), a
//     step the input skips (a branch not taken) never ran and none its input runs was
//     skipped; a succeeded run has every row its input makes, as it says, and its leaves'
//     output; every succeeded step (but a map step's own row: its elements run) has a
//     succeeded attempt; a run ended as its input says it must (a run that should have
//     succeeded may fail only if faults spent its retry budget: every attempt it lost was
//     given up by the sweep).
//   - duplicated: no step has more than one succeeded attempt; no stale completion was
//     accepted.
//   - limit_violations: at no moment did more attempts of a step overlap than its
//     max_concurrency (computed from the attempts' intervals).
//   - stuck: every run ended within a bound derived from its steps' timeouts, retries and
//     the lease grace, where a step whose timeout is longer than any work the loaders ask for
//     (the long step) is allowed that work, not its timeout: a dead worker's attempt ends at
//     the next sweep, not at its lease. No step, attempt or River job (available, running,
//     scheduled or retryable) is left live for a finished run.
//   - budget: no step made more counted attempts than its max_attempts.
//   - lease_waits: no attempt a SIGKILLed worker was running ended by lease expiry, and no
//     long step ran again only after that attempt's lease.
//   - lease_expired_live: no lease ran out while its worker was alive and connected: its
//     worker was not killed, nor cut off from the database (by a reset, the host down, a
//     black hole, each until 2 s after it healed, or by a Postgres restart) all the time from
//     its handler's end (its work or its timeout, and the second a deaf one is given) until
//     the sweep gave the attempt up. Latency, a bandwidth limit and connections cut after N
//     bytes leave a worker connected.
//   - failed_by_network: no run that should have succeeded failed during a network fault for
//     a reason other than the sweep giving up its attempts.
//   - map_violations: every map step's row agrees with its elements (maps.go): it holds no
//     job, worker or lease (while its elements run it is running without them, by design), it
//     has exactly tasks element rows, its remaining_tasks counts those not succeeded, and
//     succeeded, all succeeded and its output is theirs in order.
//
// Elements are steps to every other check, under their map step's definition (def_step):
// duplicated, budget, stuck, lease_waits and lease_expired_live hold for each element.
//
// It prints one summary line, `chaos: runs=N faults=K lost=0 duplicated=0 limit_violations=0
// stuck=0 lease_expired_live=0 failed_by_network=0 map_violations=0`, then the faults by kind;
// the runs by workflow and outcome and the number of map elements; the recovery after
// SIGKILL, from the kill until the step's next attempt started (both on the database's
// clock), p50 and max for short steps (timeouts up to a minute) and long ones apart; the
// attempts the sweep gave up because their worker's session ended (died) and because their
// lease expired, and how many of each while their worker was under a network fault; the
// start-up behind a black hole; the recovery after each Postgres restart, until the first
// step completed after it; the settle time after the load and after the last fault; and every
// violation. It fails when there is one.
package chaos
