package complexity

import (
	"fmt"
	"math"
	"slices"

	"github.com/quantumflow/qflow/pipelines/ml"
)

// featureVersion changes whenever the meaning of the features changes; a model whose spec has
// another version cannot score today's records. Version 2 dropped every outcome of a run
// (model chosen, output tokens, duration, success, quality, satisfaction): they are not known
// when a task is submitted.
const featureVersion = 2

// numericFeatures follow the one-hot task types, in this order.
var numericFeatures = []string{"log2_context_length", "uses_tools", "uses_vision"}

// FeatureSpec turns tasks into model inputs: it is stored with a model as its normalization.
type FeatureSpec struct {
	Version   int       `json:"version"`
	TaskTypes []string  `json:"task_types"`
	Names     []string  `json:"features"`
	Mean      []float64 `json:"mean"`
	Std       []float64 `json:"std"`
}

// FeatureNames lists the inputs a spec with the given task types produces.
func FeatureNames(taskTypes []string) []string {
	names := make([]string, 0, len(taskTypes)+len(numericFeatures))
	for _, t := range taskTypes {
		names = append(names, "task_type="+t)
	}
	return append(names, numericFeatures...)
}

// raw writes the unstandardized features of t into dst.
func (s *FeatureSpec) raw(dst []float64, t Task) {
	clear(dst[:len(s.TaskTypes)])
	if i := slices.Index(s.TaskTypes, t.TaskType); i >= 0 {
		dst[i] = 1
	}
	f := dst[len(s.TaskTypes):]
	f[0] = math.Log2(math.Max(float64(t.ContextLength), 1))
	f[1] = b2f(t.UsesTools)
	f[2] = b2f(t.UsesVision)
}

// FitSpec builds the spec for a vocabulary of task types with the mean and standard deviation
// of each feature over the training tasks.
func FitSpec(train []Task, taskTypes []string) FeatureSpec {
	s := FeatureSpec{Version: featureVersion, TaskTypes: append([]string(nil), taskTypes...), Names: FeatureNames(taskTypes)}
	d := len(s.Names)
	s.Mean, s.Std = make([]float64, d), make([]float64, d)
	for i := range s.Std {
		s.Std[i] = 1
	}
	raw := s.rawMatrix(train)
	for j := 0; j < d; j++ {
		var sum float64
		for i := 0; i < raw.Rows; i++ {
			sum += raw.Data[i*d+j]
		}
		n := float64(max(raw.Rows, 1))
		mean := sum / n
		var ss float64
		for i := 0; i < raw.Rows; i++ {
			v := raw.Data[i*d+j] - mean
			ss += v * v
		}
		s.Mean[j] = mean
		if std := math.Sqrt(ss / n); std > 1e-9 {
			s.Std[j] = std
		}
	}
	return s
}

func (s *FeatureSpec) rawMatrix(tasks []Task) *ml.Matrix {
	m := ml.NewMatrix(len(tasks), len(s.Names))
	for i, t := range tasks {
		s.raw(m.Row(i), t)
	}
	return m
}

// Encode returns the standardized feature matrix of tasks, one row per task.
func (s *FeatureSpec) Encode(tasks []Task) *ml.Matrix {
	m := s.rawMatrix(tasks)
	d := len(s.Names)
	for i := range m.Data {
		j := i % d
		m.Data[i] = (m.Data[i] - s.Mean[j]) / s.Std[j]
	}
	return m
}

// check reports whether the spec can encode records for a model with the given inputs.
func (s *FeatureSpec) check(inputs int) error {
	if s.Version != featureVersion {
		return fmt.Errorf("feature spec version %d, this build encodes version %d", s.Version, featureVersion)
	}
	d := len(FeatureNames(s.TaskTypes))
	if len(s.Names) != d || len(s.Mean) != d || len(s.Std) != d {
		return fmt.Errorf("feature spec lists %d names, %d means, %d stds for %d features", len(s.Names), len(s.Mean), len(s.Std), d)
	}
	if inputs != d {
		return fmt.Errorf("feature spec makes %d inputs, the model takes %d", d, inputs)
	}
	return nil
}
