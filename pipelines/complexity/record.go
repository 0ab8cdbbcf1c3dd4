package complexity

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// Record is one task execution, as ml.task_executions holds it.
type Record struct {
	ID             int64
	TaskType       string
	Model          string
	ContextLength  int
	OutputTokens   int
	ParameterCount int64
	// InputPrice and OutputPrice are USD per million tokens.
	InputPrice, OutputPrice float64
	UsesTools, UsesVision   bool
	DurationMS              int
	Success                 bool
	QualityScore            float64
	// UserSatisfaction is 1-5, 0 when unknown.
	UserSatisfaction int
	// ObservedComplexity is the label in [0, 1], negative when unknown.
	ObservedComplexity float64
	ExecutedAt         time.Time
}

// The snapshot matrix's columns: one row per record, the task type as an index into the
// snapshot's vocabulary.
const (
	colID = iota
	colTaskType
	colContextLength
	colOutputTokens
	colParameterCount
	colInputPrice
	colOutputPrice
	colUsesTools
	colUsesVision
	colDurationMS
	colSuccess
	colQualityScore
	colUserSatisfaction
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

// toSnapshot lays records out as the snapshot matrix, with the sorted task-type vocabulary.
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
		row[colOutputTokens] = float64(r.OutputTokens)
		row[colParameterCount] = float64(r.ParameterCount)
		row[colInputPrice] = r.InputPrice
		row[colOutputPrice] = r.OutputPrice
		row[colUsesTools] = b2f(r.UsesTools)
		row[colUsesVision] = b2f(r.UsesVision)
		row[colDurationMS] = float64(r.DurationMS)
		row[colSuccess] = b2f(r.Success)
		row[colQualityScore] = r.QualityScore
		row[colUserSatisfaction] = float64(r.UserSatisfaction)
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
			ID: int64(row[colID]), TaskType: meta.TaskTypes[t],
			ContextLength: int(row[colContextLength]), OutputTokens: int(row[colOutputTokens]),
			ParameterCount: int64(row[colParameterCount]),
			InputPrice:     row[colInputPrice], OutputPrice: row[colOutputPrice],
			UsesTools: row[colUsesTools] != 0, UsesVision: row[colUsesVision] != 0,
			DurationMS: int(row[colDurationMS]), Success: row[colSuccess] != 0,
			QualityScore: row[colQualityScore], UserSatisfaction: int(row[colUserSatisfaction]),
			ObservedComplexity: row[colObservedComplexity],
		}
	}
	return recs, nil
}

func satisfaction(s *int16) int {
	if s == nil {
		return 0
	}
	return int(*s)
}

func fromCollected(r gen.CollectTaskExecutionsRow) Record {
	return Record{
		ID: r.ID, TaskType: r.TaskType, ContextLength: int(r.ContextLength), OutputTokens: int(r.OutputTokens),
		ParameterCount: r.ParameterCount, InputPrice: r.InputPrice, OutputPrice: r.OutputPrice,
		UsesTools: r.UsesTools, UsesVision: r.UsesVision, DurationMS: int(r.DurationMs), Success: r.Success,
		QualityScore: r.QualityScore, UserSatisfaction: satisfaction(r.UserSatisfaction),
		ObservedComplexity: r.ObservedComplexity,
	}
}

func fromUnpredicted(r gen.UnpredictedTaskExecutionsRow) Record {
	return Record{
		ID: r.ID, TaskType: r.TaskType, ContextLength: int(r.ContextLength), OutputTokens: int(r.OutputTokens),
		ParameterCount: r.ParameterCount, InputPrice: r.InputPrice, OutputPrice: r.OutputPrice,
		UsesTools: r.UsesTools, UsesVision: r.UsesVision, DurationMS: int(r.DurationMs), Success: r.Success,
		QualityScore: r.QualityScore, UserSatisfaction: satisfaction(r.UserSatisfaction),
		ObservedComplexity: -1,
	}
}
