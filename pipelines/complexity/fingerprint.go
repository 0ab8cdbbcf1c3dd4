package complexity

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// Fingerprint is data_fingerprint's output: a summary of the records data_collection would read
// now, which changes when they do. data_collection is cached under it, so a run reuses the
// snapshot of an earlier one exactly while the data has not changed.
type Fingerprint struct {
	// Rows is how many labelled records the window holds (at most max_rows).
	Rows int `json:"rows"`
	// Newest and Oldest are their executed_at, in UTC so that workers in any time zone agree.
	Newest *time.Time `json:"newest,omitempty"`
	Oldest *time.Time `json:"oldest,omitempty"`
	MaxID  int64      `json:"max_id"`
	// Checksum sums a hash of each record's columns that data_collection reads: a relabelled
	// record changes it.
	Checksum string `json:"checksum"`
	// FeatureVersion is this build's: a build that encodes tasks otherwise makes other
	// snapshots and features of the same records, and must not reuse those of another.
	FeatureVersion int `json:"feature_version"`
}

func utc(t pgtype.Timestamptz) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// dataFingerprint checks the run input, prunes old artifacts (it is the first step, and never
// cached, so every run does it) and fingerprints the records of the window.
func (p *pipeline) dataFingerprint(ctx context.Context, in pipelines.Input) (any, error) {
	prm, err := params(in)
	if err != nil {
		return nil, err
	}
	if _, err := p.artifacts.Prune(ctx, ml.ArtifactRetention); err != nil {
		return nil, err
	}
	f, err := gen.New(p.db).TaskExecutionsFingerprint(ctx, gen.TaskExecutionsFingerprintParams{DaysBack: int32(prm.DaysBack), MaxRows: int32(prm.MaxRows)})
	if err != nil {
		return nil, fmt.Errorf("fingerprinting task executions of the last %d days: %w", prm.DaysBack, err)
	}
	return Fingerprint{Rows: int(f.Rows), Newest: utc(f.Newest), Oldest: utc(f.Oldest), MaxID: f.MaxID, Checksum: f.Checksum,
		FeatureVersion: featureVersion}, nil
}
