package ml

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/kernels"
)

// Model statuses in ml.models.
const (
	StatusCandidate = "candidate"
	StatusActive    = "active"
	StatusRetired   = "retired"
)

// StoredModel is a model of the registry, decoded.
type StoredModel struct {
	ID      int64
	Version int32
	Backend string
	Model   *kernels.Model
	// Normalization is the feature spec the model was trained with (the pipeline's own type).
	Normalization json.RawMessage
	Metrics       json.RawMessage
	// Holdout is the one its metrics record, nil when they record none (a model stored
	// before holdouts were stable): then no row is known to be unseen by it.
	Holdout *Holdout
}

// ActiveModel returns the active model of a name, or nil when there is none.
func ActiveModel(ctx context.Context, db gen.DBTX, name string) (*StoredModel, error) {
	row, err := gen.New(db).ActiveModel(ctx, name)
	if IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading the active %s model: %w", name, err)
	}
	m, err := kernels.LoadModel(row.Weights)
	if err != nil {
		return nil, fmt.Errorf("decoding the active %s model (id %d, v%d): %w", name, row.ID, row.Version, err)
	}
	var recorded struct {
		Holdout *Holdout `json:"holdout"`
	}
	if err := json.Unmarshal(row.Metrics, &recorded); err != nil {
		return nil, fmt.Errorf("decoding the metrics of the active %s model (id %d, v%d): %w", name, row.ID, row.Version, err)
	}
	return &StoredModel{ID: row.ID, Version: row.Version, Backend: row.Backend, Model: m, Normalization: row.Normalization,
		Metrics: row.Metrics, Holdout: recorded.Holdout}, nil
}

// Candidate is a freshly trained model to deploy.
type Candidate struct {
	// Name is the registry name ("complexity", "architecture").
	Name    string
	RunID   int64
	Backend string
	// Weights is the model's MarshalBinary form.
	Weights       []byte
	Architecture  any
	Normalization any
	// Metrics must encode as a JSON object; Deploy adds the decision to it.
	Metrics any
}

// Judge decides, while the registry is locked for the candidate's name, whether the candidate
// should replace active (nil when no model is active); Decision.Reason says why in words.
type Judge func(ctx context.Context, active *StoredModel) (Decision, error)

// Deployed is what Deploy did.
type Deployed struct {
	ID       int64  `json:"model_id"`
	Version  int32  `json:"version"`
	Status   string `json:"status"`
	Decision string `json:"decision"`
	// Reused: the run had stored this model before (the step was retried); nothing changed.
	Reused bool `json:"reused,omitempty"`
}

// Deploy stores c in ml.models with the next version of its name. It is active when judge
// says so (the previous active model is retired in the same transaction), a candidate
// otherwise; the decision goes into its metrics under "decision", and its reason into the
// decision column. Deploying again for the same run returns the model stored the first time.
func Deploy(ctx context.Context, db DB, c Candidate, judge Judge) (Deployed, error) {
	var out Deployed
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		q := gen.New(tx)
		if err := q.LockModelName(ctx, c.Name); err != nil {
			return fmt.Errorf("locking model name: %w", err)
		}
		runID := c.RunID
		prev, err := q.ModelOfRun(ctx, gen.ModelOfRunParams{Name: c.Name, RunID: &runID})
		if err == nil {
			out = Deployed{ID: prev.ID, Version: prev.Version, Status: prev.Status, Decision: prev.Decision, Reused: true}
			return nil
		}
		if !IsNoRows(err) {
			return fmt.Errorf("looking for the model of run %d: %w", c.RunID, err)
		}

		active, err := ActiveModel(ctx, tx, c.Name)
		if err != nil {
			return err
		}
		decision, err := judge(ctx, active)
		if err != nil {
			return fmt.Errorf("comparing with the active model: %w", err)
		}
		status := StatusCandidate
		if decision.Activated {
			status = StatusActive
			if err := q.RetireActiveModel(ctx, c.Name); err != nil {
				return fmt.Errorf("retiring the active model: %w", err)
			}
		}
		params := gen.InsertModelParams{Name: c.Name, Backend: c.Backend, Weights: c.Weights, Status: status, Decision: decision.Reason, TrainingRunID: &runID}
		for _, f := range []struct {
			dst  *json.RawMessage
			v    any
			what string
		}{{&params.Architecture, c.Architecture, "architecture"}, {&params.Normalization, c.Normalization, "normalization"}, {&params.Metrics, c.Metrics, "metrics"}} {
			raw, err := json.Marshal(f.v)
			if err != nil {
				return fmt.Errorf("encoding %s: %w", f.what, err)
			}
			*f.dst = raw
		}
		if params.Metrics, err = withDecision(params.Metrics, decision); err != nil {
			return err
		}
		row, err := q.InsertModel(ctx, params)
		if err != nil {
			return fmt.Errorf("inserting the model: %w", err)
		}
		out = Deployed{ID: row.ID, Version: row.Version, Status: status, Decision: decision.Reason}
		return nil
	})
	if err != nil {
		return Deployed{}, fmt.Errorf("deploying %s model of run %d: %w", c.Name, c.RunID, err)
	}
	return out, nil
}

// withDecision adds the decision to a metrics object.
func withDecision(metrics json.RawMessage, d Decision) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(metrics, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("metrics must encode as a JSON object, got %.40s", metrics)
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encoding the decision: %w", err)
	}
	fields["decision"] = raw
	return json.Marshal(fields)
}
