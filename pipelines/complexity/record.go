package complexity

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// Task is what is known of a task when it is submitted, before it runs: all the complexity
// model sees. A complexity score is wanted then, to route the task, so nothing that running it
// produces may be a feature.
type Task struct {
	TaskType      string
	ContextLength int
	// UsesTools and UsesVision are the capabilities the task asks for.
	UsesTools, UsesVision bool
}

// Record is one task execution, as ml.task_executions holds it: the task, what running it
// produced, and the label.
type Record struct {
	ID int64
	Task
	// The outcome, known only after the task ran: the model chosen for it (its name, size and
	// prices in USD per million tokens), tokens produced, duration, success, quality and the
	// user's satisfaction (1-5, 0 when unknown). The pipeline never reads them.
	Model                   string
	ParameterCount          int64
	InputPrice, OutputPrice float64
	OutputTokens            int
	DurationMS              int
	Success                 bool
	QualityScore            float64
	UserSatisfaction        int
	// ObservedComplexity is the label in [0, 1], negative when unknown.
	ObservedComplexity float64
	ExecutedAt         time.Time
}

// holdoutKey is a record's identity for the holdout: its id.
func holdoutKey(id int64) string { return strconv.FormatInt(id, 10) }

// The snapshot matrix's columns: one row per record, the task type as an index into the
// snapshot's vocabulary.
const (
	colID = iota
	colTaskType
	colContextLength
	colUsesTools
	colUsesVision
	colObservedComplexity
	snapshotCols
)

// snapshotMeta is stored with the snapshot matrix.
type snapshotMeta struct {
	TaskTypes []string `json:"task_types"`
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// toSnapshot lays records' ids, tasks and labels out as the snapshot matrix, with the sorted
// task-type vocabulary.
func toSnapshot(recs []Record) (*ml.Matrix, snapshotMeta) {
	var vocab []string
	for _, r := range recs {
		if !slices.Contains(vocab, r.TaskType) {
			vocab = append(vocab, r.TaskType)
		}
	}
	sort.Strings(vocab)
	m := ml.NewMatrix(len(recs), snapshotCols)
	for i, r := range recs {
		row := m.Row(i)
		row[colID] = float64(r.ID)
		row[colTaskType] = float64(slices.Index(vocab, r.TaskType))
		row[colContextLength] = float64(r.ContextLength)
		row[colUsesTools] = b2f(r.UsesTools)
		row[colUsesVision] = b2f(r.UsesVision)
		row[colObservedComplexity] = r.ObservedComplexity
	}
	return m, snapshotMeta{TaskTypes: vocab}
}

// fromSnapshot is the inverse of toSnapshot.
func fromSnapshot(m *ml.Matrix, meta snapshotMeta) ([]Record, error) {
	if m.Cols != snapshotCols {
		return nil, fmt.Errorf("snapshot has %d columns, want %d", m.Cols, snapshotCols)
	}
	recs := make([]Record, m.Rows)
	for i := range recs {
		row := m.Row(i)
		t := int(row[colTaskType])
		if t < 0 || t >= len(meta.TaskTypes) {
			return nil, fmt.Errorf("snapshot row %d: task type index %d outside the vocabulary of %d", i, t, len(meta.TaskTypes))
		}
		recs[i] = Record{
			ID: int64(row[colID]),
			Task: Task{TaskType: meta.TaskTypes[t], ContextLength: int(row[colContextLength]),
				UsesTools: row[colUsesTools] != 0, UsesVision: row[colUsesVision] != 0},
			ObservedComplexity: row[colObservedComplexity],
		}
	}
	return recs, nil
}

func fromCollected(r gen.CollectTaskExecutionsRow) Record {
	return Record{
		ID:                 r.ID,
		Task:               Task{TaskType: r.TaskType, ContextLength: int(r.ContextLength), UsesTools: r.UsesTools, UsesVision: r.UsesVision},
		ObservedComplexity: r.ObservedComplexity,
	}
}

func tasksOf(recs []Record) []Task {
	out := make([]Task, len(recs))
	for i, r := range recs {
		out[i] = r.Task
	}
	return out
}
