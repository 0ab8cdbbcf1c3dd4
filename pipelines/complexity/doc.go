// Package complexity is the complexity_training workflow: it learns a task-complexity score in
// [0, 1] from the task execution records in ml.task_executions, evaluates it on held-out
// records against a baseline, deploys it to the model registry and scores the records that
// have no prediction yet.
//
// # Steps
//
//	data_fingerprint     cpu, ≤5 at once, 30 s   checks the input, prunes old artifacts, fingerprints the window's labelled records
//	data_collection      cpu, ≤5 at once, 60 s   labelled tasks of the last days_back days → snapshot artifact (cached)
//	feature_engineering  cpu, ≤3 at once, 30 s   stable holdout, validation and training rows, features fitted on training → artifacts; configs (cached)
//	model_training       gpu, ≤1 at once, 180 s  map over configs: each configuration on the training rows, its best epoch on the validation rows → model_<i> artifact
//	model_selection      cpu, ≤2 at once, 30 s   the configuration of the lowest validation MSE
//	model_evaluation     cpu, ≤2 at once, 30 s   MSE, R², accuracy (|error| < 0.1) of model and baseline, with 95% intervals
//	model_deployment     cpu, ≤1 at once, 60 s   ml.models; champion/challenger decision; backfill predictions
//
// Run input (all optional): days_back (30), min_rows (100), max_rows (100000), held_out (0.2),
// epochs (50), batch_size (32), seed (0), min_improvement (0.02), checkpoint_every (10),
// checkpoint_seconds (60), sweep (none). Fewer than min_rows labelled records in the window
// fail data_collection permanently: waiting and retrying will not create data. Each training
// checkpoints and resumes as package ml says (Checkpoints), under checkpoint_model_training_<i>.
//
// # Sweep: choosing a configuration
//
// sweep is an array of 1 to MaxSweep (64) configurations, objects with any of learning_rate,
// hidden_layers (widths), dropout (one share per hidden layer), epochs, batch_size and seed;
// a field left out is the run's own: the seed network's learning rate 1e-3, hidden layers
// [64, 32] and dropouts [0.2, 0.1], and the run's epochs, batch_size and seed. Other hidden
// layers must name their dropouts. Every mistake in the input is reported at once, by the
// first step, as a permanent error. feature_engineering outputs the configurations, all
// fields filled (TrainingConfig), as configs; without a sweep, the run's own alone, which
// trains exactly the model a run trained before sweeps. model_training runs once per
// configuration. model_selection scores each model on the validation rows (the tenth of the
// training side that no training fits; never the held-out records) and keeps the one of the
// lowest MSE, the first in sweep order among equals; its output is the chosen configuration's
// training, as model_evaluation and model_deployment read it, with every configuration's
// validation loss (SelectOutput).
//
// # Caching: the same data is collected and encoded once
//
// data_fingerprint (never cached) sums up the records data_collection would read: their count,
// newest and oldest executed_at, highest id and a checksum of the columns read (Fingerprint).
// data_collection is cached under that fingerprint and days_back, min_rows and max_rows;
// feature_engineering under data_collection's output and held_out, sweep, epochs, batch_size
// and seed (its configs are made of them), both for 12 hours: a run on unchanged data reuses
// an earlier run's snapshot, rows and features. Their outputs name the artifacts of the run
// that computed them (ml.Ref), which the reusing run reads; 12 hours is half of
// ml.ArtifactRetention, so those artifacts are still there.
//
// The network is the seed's, unless a sweep chose another: inputs → 64 ReLU (dropout 0.2) →
// 32 ReLU (dropout 0.1) → 1 sigmoid, MSE loss, Adam with learning rate 1e-3
// (kernels.SeedNetwork). At batch size 32
// the last epochs' weights wander by several per cent of held-out MSE from one epoch to the
// next, so the model keeps the weights of the epoch with the lowest loss on the validation
// rows (kernels.Config.KeepBest; chosen on those rows, never on the holdout). The baseline
// predicts the mean complexity of the training records for every record.
//
// # Features: what is known when a task is submitted
//
// A complexity score is wanted before a task runs, to route it, so the model learns only from
// the Task: what the submitter asked for. What running the task produced (the model chosen for
// it, its size and prices, output tokens, duration, success, quality, the user's satisfaction)
// is never read: data_collection selects only the task's columns and the label, and the
// feature spec encodes a Task, which has no other fields. On real data those outcomes would
// inflate held-out metrics and be missing when the score is needed.
//
// Each task becomes these inputs (FeatureNames), standardized with the mean and standard
// deviation of the training rows (a constant feature gets std 1). The encoding, including the
// task-type vocabulary and those statistics, is the FeatureSpec stored with the model as its
// normalization, so deployment and backfill encode tasks exactly as training did; a task type
// the model never saw gets no one-hot bit.
//
//	task_type=<t>         one-hot over the task types of the training window
//	log2_context_length   log2(context_length)
//	uses_tools            0/1
//	uses_vision           0/1
//
// # Rows: holdout, validation, training
//
// Every record belongs for good to the holdout or the training side, by a hash of its id
// (ml.Holdout, share held_out): no seed or window moves it, so no model of this pipeline ever
// trains on a record another model is evaluated on. A tenth of the training side, by another
// hash, is the validation rows: the training does not fit them but measures its loss on them
// after every epoch, for the loss curve. Held-out figures come from the holdout alone, each
// with a 95% bootstrap interval (ml.RegressionMetrics).
//
// # Deployment rule: champion and challenger
//
// The candidate is scored against the baseline and the active model on the same held-out
// records, by a paired bootstrap of the relative MSE gain (ml.Rule). It must beat the baseline
// with 95% confidence. It replaces the active model when none is active, when the active model
// cannot be compared (it records no comparable holdout, or cannot encode today's tasks: its
// features are of an older version), or when, on the held-out records both models' holdouts
// hold (neither trained on them), its MSE is lower by more than min_improvement (2%) with 95%
// confidence. Otherwise it is stored as a candidate. The decision, with both estimates and
// their intervals, is stored in the model's metrics; then every record without a predicted
// complexity is scored by whichever model is active.
//
// # Generated data
//
// Generate makes records for `qflow seed-data` and tests. Their observed complexity is
// HiddenComplexity of the task, a function of the Task alone, plus Gaussian noise (σ = 0.04),
// clamped to [0, 1]; the outcomes (model choice, output tokens, duration, quality, success,
// satisfaction) are drawn from the true complexity, as real ones would be. Since the function
// depends on nothing else, the best any model can do on a record is the mean of its clamped
// label, with the label's variance as squared error (LabelVariance): σ² = 0.0016 in the
// middle, less near 0 and 1 where clamping cuts the noise. Averaged over generated records,
// the best possible held-out MSE (Ceiling) is about 0.00148; predicting the mean scores the
// variance of the label, about 0.092 (labels spread with a standard deviation of about 0.30).
// From 20,000 records the model's held-out MSE comes within about 3-13 % of the ceiling,
// depending on the seed.
package complexity
