// Package enginetest runs the engine inside a test: a fresh migrated database of the test's
// own (from internal/dbtest), a registry whose definitions are registered there, in-process
// workers that stop when the test ends, and the few things every engine test does with them:
// start a run by SQL insert, as a user would, wait for it, and read what it did.
//
// A test's bundle embeds *Env and adds what only its package needs:
//
//	type testBundle struct{ *enginetest.Env }
//
//	func setup(t *testing.T) *testBundle {
//		t.Helper()
//		return &testBundle{enginetest.New(t, enginetest.Probes)}
//	}
//
//	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 4})
//	r := b.Wait(t, b.Start(t, probe.Chain, `{}`), time.Minute)
//
// Waits take a limit that catches a hang; it is never a speed bound, so limits are many times
// the expected time.
package enginetest
