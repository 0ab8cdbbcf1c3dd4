// Package complexity is the complexity_training workflow: it learns a task-complexity score in
// [0, 1] from the task execution records in ml.task_executions, evaluates it on held-out
// records against a baseline, deploys it to the model registry and scores the records that
// have no prediction yet.
//
// # Steps
//
//	data_collection      cpu, ≤5 at once, 60 s   labelled records of the last days_back days → snapshot artifact
//	feature_engineering  cpu, ≤3 at once, 30 s   seeded train/held-out split, features fitted on train → artifacts
//	model_training       gpu, ≤1 at once, 180 s  the seed network on the train matrix → model artifact
//	model_evaluation     cpu, ≤2 at once, 30 s   MSE, R², accuracy (|error| < 0.1) of model and baseline
//	model_deployment     cpu, ≤1 at once, 60 s   ml.models; activate only if it wins; backfill predictions
//
// Run input (all optional): days_back (30), min_rows (100), max_rows (100000), held_out (0.2),
// epochs (50), batch_size (32), seed (0), checkpoint_every (10), checkpoint_seconds (60). Fewer
// than min_rows labelled records in the window fail data_collection permanently: waiting and
// retrying will not create data. model_training checkpoints and resumes as package ml says
// (Checkpoints).
//
// The network is the seed's: inputs → 64 ReLU (dropout 0.2) → 32 ReLU (dropout 0.1) →
// 1 sigmoid, MSE loss, Adam with learning rate 1e-3 (kernels.SeedNetwork). The baseline
// predicts the mean complexity of the training records for every record.
//
// # Features
//
// Each record becomes these inputs (FeatureNames), then is standardized with the mean and
// standard deviation of the training split (a constant feature gets std 1). The encoding,
// including the task-type vocabulary and those statistics, is the FeatureSpec stored with the
// model as its normalization, so deployment and backfill encode new records exactly as
// training did; a task type the model never saw gets no one-hot bit.
//
//	task_type=<t>         one-hot over the task types of the training window
//	log2_context_length   log2(context_length)
//	log2_output_tokens    log2(1 + output_tokens)
//	log10_parameters      log10(parameter_count)
//	log_input_price       ln(1 + input price per million tokens)
//	log_output_price      ln(1 + output price per million tokens)
//	uses_tools            0/1
//	uses_vision           0/1
//	log_duration_ms       ln(1 + duration_ms)
//	success               0/1
//	quality_score         as recorded
//	user_satisfaction     1-5, 3 when unknown
//	satisfaction_missing  0/1
//
// # Deployment rule
//
// A model that does not beat the baseline's held-out MSE is never activated. Otherwise it is
// activated when no model is active, or when its MSE on this run's held-out records is below
// the active model's MSE on the same records (scored with the active model's own feature
// spec). Anything else is stored as a candidate. Then every record without a predicted
// complexity is scored by whichever model is active.
//
// # Generated data
//
// Generate makes records for `qflow seed-data` and tests. Their observed complexity is
// HiddenComplexity of the task plus Gaussian noise (σ = 0.04, clamped to [0, 1]); the
// outcomes (model choice, duration, quality, success, satisfaction) are drawn from the true
// complexity, so they carry signal too, as real ones would. With σ = 0.04 the best possible
// held-out MSE is about 0.0016; predicting the mean scores the variance of the label, about
// 0.095 (labels spread with a standard deviation of about 0.31).
package complexity
