package ml

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/kernels"
)

// Matrix is a dense row-major matrix of float64, the form in which steps hand arrays on.
type Matrix struct {
	Rows, Cols int
	Data       []float64
}

// NewMatrix returns a zero rows×cols matrix.
func NewMatrix(rows, cols int) *Matrix {
	return &Matrix{Rows: rows, Cols: cols, Data: make([]float64, rows*cols)}
}

// Row returns row i, sharing the matrix's memory.
func (m *Matrix) Row(i int) []float64 { return m.Data[i*m.Cols : (i+1)*m.Cols] }

// Column returns a copy of column j.
func (m *Matrix) Column(j int) []float64 {
	out := make([]float64, m.Rows)
	for i := range out {
		out[i] = m.Data[i*m.Cols+j]
	}
	return out
}

// Columns returns the rows×(hi-lo) block of columns [lo, hi) as float32, the kernels' type.
func (m *Matrix) Columns(lo, hi int) []float32 {
	out := make([]float32, 0, m.Rows*(hi-lo))
	for i := 0; i < m.Rows; i++ {
		for _, v := range m.Data[i*m.Cols+lo : i*m.Cols+hi] {
			out = append(out, float32(v))
		}
	}
	return out
}

// Select returns the matrix of the given rows, in that order.
func (m *Matrix) Select(rows []int) *Matrix {
	out := NewMatrix(len(rows), m.Cols)
	for i, r := range rows {
		copy(out.Row(i), m.Row(r))
	}
	return out
}

func (m *Matrix) encode() []byte {
	buf := make([]byte, 8*len(m.Data))
	for i, v := range m.Data {
		binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(v))
	}
	return buf
}

func decodeMatrix(rows, cols int, data []byte) (*Matrix, error) {
	if len(data) != 8*rows*cols {
		return nil, fmt.Errorf("%d bytes for a %dx%d matrix", len(data), rows, cols)
	}
	m := NewMatrix(rows, cols)
	for i := range m.Data {
		m.Data[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
	}
	return m, nil
}

// ArtifactRetention is how long the artifacts of finished runs are kept for inspection; each
// pipeline's first step prunes older ones. A cached step's output names artifacts of the run
// that computed it, so a pipeline caches a step for well under this (the output is at least as
// old as that run's end) and the run that reuses it has finished reading them before they go.
const ArtifactRetention = 24 * time.Hour

// Ref names an artifact in a step's output: the run that wrote it and its id.
//
// Reads are scoped to the writing run (the id alone would find the row: ids are unique) so that
// a stale or mistaken id fails instead of reading some other run's data. A cached step breaks
// the assumption that the writer is the reading run: a later run reuses the output, and with it
// the artifacts, of the run that computed it. Rather than drop the scoping, the output names
// the writer, and readers pass Ref.Run as the runID of Matrix, JSON and Model: a run reads
// another's artifact exactly when an output it was handed says so.
type Ref struct {
	Run int64 `json:"run"`
	ID  int64 `json:"id"`
}

// Artifacts stores and loads the artifacts of runs.
type Artifacts struct {
	db DB
	q  *gen.Queries
}

// NewArtifacts returns an artifact store on db.
func NewArtifacts(db DB) *Artifacts { return &Artifacts{db: db, q: gen.New(db)} }

func (a *Artifacts) put(ctx context.Context, p gen.PutArtifactParams, meta any) (int64, error) {
	raw, err := json.Marshal(meta)
	if err != nil {
		return 0, fmt.Errorf("encoding metadata of artifact %s: %w", p.Name, err)
	}
	if meta == nil {
		raw = []byte("{}")
	}
	p.Meta = raw
	id, err := a.q.PutArtifact(ctx, p)
	if err != nil {
		return 0, fmt.Errorf("storing artifact %s of run %d: %w", p.Name, p.RunID, err)
	}
	return id, nil
}

// PutMatrix stores m as the run's artifact name (replacing an earlier one) and returns its id.
// meta, if not nil, must encode as a JSON object.
func (a *Artifacts) PutMatrix(ctx context.Context, runID int64, name string, m *Matrix, meta any) (int64, error) {
	rows, cols := int32(m.Rows), int32(m.Cols)
	return a.put(ctx, gen.PutArtifactParams{RunID: runID, Name: name, Kind: "matrix", Rows: &rows, Cols: &cols, Data: m.encode()}, meta)
}

// PutJSON stores v, encoded as JSON, as the run's artifact name and returns its id.
func (a *Artifacts) PutJSON(ctx context.Context, runID int64, name string, v any) (int64, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encoding artifact %s: %w", name, err)
	}
	return a.put(ctx, gen.PutArtifactParams{RunID: runID, Name: name, Kind: "json", Data: raw}, nil)
}

// PutModel stores a trained model in its binary form as the run's artifact name.
func (a *Artifacts) PutModel(ctx context.Context, runID int64, name string, m *kernels.Model, meta any) (int64, error) {
	raw, err := m.MarshalBinary()
	if err != nil {
		return 0, fmt.Errorf("encoding model artifact %s: %w", name, err)
	}
	return a.put(ctx, gen.PutArtifactParams{RunID: runID, Name: name, Kind: "model", Data: raw}, meta)
}

func (a *Artifacts) get(ctx context.Context, runID, id int64, kind string) (gen.GetArtifactRow, error) {
	row, err := a.q.GetArtifact(ctx, gen.GetArtifactParams{ID: id, RunID: runID})
	if IsNoRows(err) {
		return row, fmt.Errorf("artifact %d of run %d does not exist (pruned, or from another run)", id, runID)
	}
	if err != nil {
		return row, fmt.Errorf("loading artifact %d of run %d: %w", id, runID, err)
	}
	if row.Kind != kind {
		return row, fmt.Errorf("artifact %d (%s) of run %d is a %s, not a %s", id, row.Name, runID, row.Kind, kind)
	}
	return row, nil
}

// Matrix loads a matrix artifact that run runID wrote, decoding its metadata into meta unless
// that is nil.
func (a *Artifacts) Matrix(ctx context.Context, runID, id int64, meta any) (*Matrix, error) {
	row, err := a.get(ctx, runID, id, "matrix")
	if err != nil {
		return nil, err
	}
	m, err := decodeMatrix(int(*row.Rows), int(*row.Cols), row.Data)
	if err != nil {
		return nil, fmt.Errorf("decoding artifact %d (%s): %w", id, row.Name, err)
	}
	if err := decodeMeta(row, meta); err != nil {
		return nil, err
	}
	return m, nil
}

// JSON loads a JSON artifact that run runID wrote into v.
func (a *Artifacts) JSON(ctx context.Context, runID, id int64, v any) error {
	row, err := a.get(ctx, runID, id, "json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(row.Data, v); err != nil {
		return fmt.Errorf("decoding artifact %d (%s): %w", id, row.Name, err)
	}
	return nil
}

// Model loads a model artifact that run runID wrote and returns it with its serialized form,
// decoding its metadata into meta unless that is nil.
func (a *Artifacts) Model(ctx context.Context, runID, id int64, meta any) (*kernels.Model, []byte, error) {
	row, err := a.get(ctx, runID, id, "model")
	if err != nil {
		return nil, nil, err
	}
	m, err := kernels.LoadModel(row.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("decoding model artifact %d: %w", id, err)
	}
	if err := decodeMeta(row, meta); err != nil {
		return nil, nil, err
	}
	return m, row.Data, nil
}

// decodeMeta decodes an artifact's metadata into meta unless that is nil.
func decodeMeta(row gen.GetArtifactRow, meta any) error {
	if meta == nil {
		return nil
	}
	if err := json.Unmarshal(row.Meta, meta); err != nil {
		return fmt.Errorf("decoding metadata of artifact %d (%s): %w", row.ID, row.Name, err)
	}
	return nil
}

// find loads the run's artifact name, or returns nil when there is none (a step's retry finds
// its checkpoint this way: it gets no output of its own earlier attempt).
func (a *Artifacts) find(ctx context.Context, runID int64, name string) (*gen.GetArtifactRow, error) {
	row, err := a.q.GetArtifactByName(ctx, gen.GetArtifactByNameParams{RunID: runID, Name: name})
	if IsNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading artifact %s of run %d: %w", name, runID, err)
	}
	found := gen.GetArtifactRow(row)
	return &found, nil
}

// Prune deletes the artifacts of runs that finished longer than retention ago and returns how
// many went.
func (a *Artifacts) Prune(ctx context.Context, retention time.Duration) (int64, error) {
	n, err := a.q.PruneArtifacts(ctx, retention.Seconds())
	if err != nil {
		return 0, fmt.Errorf("pruning artifacts older than %s: %w", retention, err)
	}
	return n, nil
}
