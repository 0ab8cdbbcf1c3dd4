// Package ml holds what the ML pipelines (complexity, architecture) share: the shape of their
// definitions (Chain, Step), the checking of their run input (DecodeParams), the database
// handle their steps use, artifacts that steps hand each other by reference, the model
// registry with its deployment rule, serialized access to a training backend with its loss
// curve, held-out metrics with intervals, and the stable holdout. What a pipeline learns, from
// which features, stays in the pipeline.
//
// # Rows: a stable holdout
//
// A row (a record, a package) belongs for good to a pipeline's holdout or to its training
// side, by a hash of its identity (Holdout): no seed, data window or root list moves it, so a
// row one model is evaluated on never trained another of the same pipeline. Models record their
// Holdout in their metrics; a larger share holds out a superset of a smaller one's rows. On the
// training side another hash picks ValidationShare of the rows, which the training measures its
// loss on after every epoch but never fits (the second line of the loss curve), and a third the
// cross-validation folds (Fold). The holdout is used for nothing but evaluation.
//
// # Figures with intervals
//
// Every figure is an Estimate: the value on the rows and its 95% percentile bootstrap interval
// over Resamples resamples of them (Bootstrap; the resamples are seeded by the row count, so
// the same predictions give the same intervals in every run). RegressionMetrics and
// ClassificationMetrics compute them; a class with fewer than MinSupport rows is reported as
// too small rather than given an F1 one row would swing.
//
// # Artifacts
//
// A step never puts large arrays in its output. It stores them in ml.artifacts under its run
// and a name, and outputs the artifact's id; the next step loads it by id and the run that
// wrote it (Ref): a stale id fails rather than read another run's data, and the output of a
// cached step, reused by a later run, still leads to the artifacts it was computed with.
// (run, name) is unique, so a retried step (or a retried legacy chain) overwrites its own
// artifact and keeps the id. Matrices are float64, row-major, little-endian: exact for record
// ids and parameter counts, and 8 bytes a value is nothing next to JSON. Artifacts of runs
// finished longer ago than ArtifactRetention are pruned by the pipelines' first steps.
//
// # Checkpoints
//
// A training step's attempt may end before its training does: the worker is preempted or shut
// down (it cancels the handler's context, then releases the step), the step times out, the
// worker crashes. Trainer.Train with a StepCheckpoint keeps the training's kernels.Checkpoint
// (weights, Adam moments and step count, epoch, shuffling state) in the run's artifact
// checkpoint_<step> (checkpoint_<step>_<task> for each task of a map step, which trains one
// model per element), kind model, overwritten as training advances: every checkpoint_every
// epochs [10], after the first epoch ending checkpoint_seconds after the last save [60], after
// the last epoch, and when the context ends mid-training (the last completed epoch, within
// kernels.DefaultCheckpointGrace, inside the second the worker waits for a cancelled handler).
// Every attempt starts by loading that artifact and resuming from it; on the CPU backend the
// resumed training ends with exactly the weights of an uninterrupted one. A damaged checkpoint,
// or one of another training (the step's data changed between attempts), is ignored and the
// training starts afresh. The step's output says so: training.resumed_from_epoch (0 when
// fresh), training.checkpoint (the artifact id) and training.checkpoint_ignored.
//
// Each epoch is reported with pipelines.ReportProgress: done/total epochs, the loss, samples per
// second and the time left at this attempt's pace.
//
// Each epoch is reported with pipelines.ReportProgress: done/total epochs, the loss (and the
// validation loss), samples per second and the time left at this attempt's pace. The loss curve
// (TrainStats.Curve) goes with the model artifact (ModelMeta) and into the registry; the
// validation losses of checkpointed epochs go in the checkpoint artifact's metadata, so a
// resumed training's curve is whole.
//
// # Deployment: champion and challenger
//
// Deploy stores a trained model in ml.models and decides its status under a per-name lock:
// the caller's Judge sees the active model (if any) and returns a Decision, which Deploy stores
// in the model's metrics, its reason in ml.models.decision. A model that does not win is kept
// as a candidate; activation retires the previous active model in the same transaction, and a
// unique index keeps one active model per name. A run that deploys again (a retried step) gets
// the model it stored the first time.
//
// Both pipelines judge by the same Rule: the candidate must beat the baseline, then the active
// model, each by a paired bootstrap over the same held-out rows, the active model only on rows
// its own holdout holds too (neither trained on them), with a minimum gain over it. An active
// model that records no comparable holdout, or cannot score today's data, cannot be compared
// and is replaced by a candidate that beats the baseline. A pipeline supplies its score, its
// gain, how to predict with the active model and how its numbers read.
//
// # Backends
//
// kernels backends need not be safe for concurrent use (a CUDA context is bound to a thread),
// and one process may run several training steps at once (legacy chains, or a raised
// concurrency limit). A Trainer serializes training on a given backend; with no backend it
// trains each call on a fresh CPU backend, which needs no serializing.
package ml
