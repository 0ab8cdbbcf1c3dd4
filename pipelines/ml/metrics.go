package ml

import "math"

// Regression holds held-out metrics of a score in [0, 1], each with its interval.
type Regression struct {
	MSE Estimate `json:"mse"`
	// R2 is 1 - SSE/SST against the rows' own mean: 0 for predicting that mean, negative for
	// worse (0 for rows whose truth does not vary).
	R2 Estimate `json:"r2"`
	// Accuracy is the share of predictions within the tolerance of the truth.
	Accuracy Estimate `json:"accuracy"`
}

// RegressionMetrics scores pred against truth; accuracy counts |pred - truth| < tolerance.
func RegressionMetrics(pred, truth []float64, tolerance float64) Regression {
	e := Bootstrap(len(truth), func(idx []int) []float64 {
		mse, r2, acc := regressionScores(pred, truth, idx, tolerance)
		return []float64{mse, r2, acc}
	})
	return Regression{MSE: e[0], R2: e[1], Accuracy: e[2]}
}

// MSE is the mean squared error of pred over the rows idx (0 for none).
func MSE(pred, truth []float64, idx []int) float64 {
	mse, _, _ := regressionScores(pred, truth, idx, 0)
	return mse
}

func regressionScores(pred, truth []float64, idx []int, tolerance float64) (mse, r2, accuracy float64) {
	if len(idx) == 0 {
		return 0, 0, 0
	}
	n := float64(len(idx))
	var mean float64
	for _, i := range idx {
		mean += truth[i]
	}
	mean /= n
	var sse, sst float64
	within := 0
	for _, i := range idx {
		d := pred[i] - truth[i]
		sse += d * d
		sst += (truth[i] - mean) * (truth[i] - mean)
		if math.Abs(d) < tolerance {
			within++
		}
	}
	if sst > 0 {
		r2 = 1 - sse/sst
	}
	return sse / n, r2, float64(within) / n
}

// MinSupport is the fewest members a class needs among the evaluated rows for its own
// precision, recall and F1 to be reported: with fewer, one row moves them by a fifth or more.
const MinSupport = 5

// Classification holds held-out metrics of a classifier, each with its interval.
type Classification struct {
	Accuracy Estimate `json:"accuracy"`
	// MacroF1 is the unweighted mean F1 over the classes that occur in the truth or the
	// predictions (a class neither holds nor is predicted says nothing either way), too small
	// ones included.
	MacroF1 Estimate `json:"macro_f1"`
	// Confusion[t][p] counts rows of true class t predicted as p.
	Confusion [][]int `json:"confusion,omitempty"`
	// Classes has every class's figures, in class order.
	Classes []ClassScore `json:"classes,omitempty"`
}

// ClassScore is one class of a Classification.
type ClassScore struct {
	Class string `json:"class"`
	// Support counts the evaluated rows of the class; Predicted the rows predicted as it.
	Support   int `json:"support"`
	Predicted int `json:"predicted"`
	// TooSmall: Support is below MinSupport, so the class is not evaluated on its own (its
	// estimates are absent), though it counts in the macro-F1.
	TooSmall  bool      `json:"too_small,omitempty"`
	Precision *Estimate `json:"precision,omitempty"`
	Recall    *Estimate `json:"recall,omitempty"`
	F1        *Estimate `json:"f1,omitempty"`
}

// Headline is c without its confusion matrix and per-class figures: a baseline's, say.
func (c Classification) Headline() Classification {
	return Classification{Accuracy: c.Accuracy, MacroF1: c.MacroF1}
}

// ClassificationMetrics scores predicted class indices against true ones; classes names them.
func ClassificationMetrics(pred, truth []int, classes []string) Classification {
	k := len(classes)
	c := Classification{Confusion: confusion(pred, truth, k, nil)}
	var evaluated []int
	for j, name := range classes {
		s := ClassScore{Class: name}
		for t := 0; t < k; t++ {
			s.Support += c.Confusion[j][t]
			s.Predicted += c.Confusion[t][j]
		}
		s.TooSmall = s.Support < MinSupport
		if !s.TooSmall {
			evaluated = append(evaluated, j)
		}
		c.Classes = append(c.Classes, s)
	}
	e := Bootstrap(len(truth), func(idx []int) []float64 {
		m := confusion(pred, truth, k, idx)
		acc, f1 := classificationScores(m)
		out := []float64{acc, f1}
		for _, j := range evaluated {
			p, r, f := classScores(m, j)
			out = append(out, p, r, f)
		}
		return out
	})
	c.Accuracy, c.MacroF1 = e[0], e[1]
	for i, j := range evaluated {
		p, r, f := e[2+3*i], e[3+3*i], e[4+3*i]
		c.Classes[j].Precision, c.Classes[j].Recall, c.Classes[j].F1 = &p, &r, &f
	}
	return c
}

// MacroF1 is the macro-F1 of pred over the rows idx, as ClassificationMetrics defines it.
func MacroF1(pred, truth []int, classes int, idx []int) float64 {
	_, f1 := classificationScores(confusion(pred, truth, classes, idx))
	return f1
}

// confusion counts the rows idx (every row when idx is nil) by true and predicted class.
func confusion(pred, truth []int, k int, idx []int) [][]int {
	m := make([][]int, k)
	for i := range m {
		m[i] = make([]int, k)
	}
	if idx == nil {
		for i, t := range truth {
			m[t][pred[i]]++
		}
		return m
	}
	for _, i := range idx {
		m[truth[i]][pred[i]]++
	}
	return m
}

// classificationScores are the accuracy and macro-F1 of a confusion matrix (0 for no rows).
func classificationScores(m [][]int) (accuracy, macroF1 float64) {
	total, correct := 0, 0
	var sum float64
	seen := 0
	for j := range m {
		correct += m[j][j]
		var actual, predicted int
		for t := range m {
			total += m[j][t]
			actual += m[j][t]
			predicted += m[t][j]
		}
		if actual == 0 && predicted == 0 {
			continue
		}
		seen++
		if _, _, f := classScores(m, j); !math.IsNaN(f) {
			sum += f
		}
	}
	if total == 0 {
		return 0, 0
	}
	return float64(correct) / float64(total), sum / float64(seen)
}

// classScores are class j's precision, recall and F1. With no row of the class and none
// predicted as it all three are NaN (nothing to say); a class never predicted has precision 0,
// one without rows recall NaN; F1 is 0 without a hit.
func classScores(m [][]int, j int) (precision, recall, f1 float64) {
	tp := m[j][j]
	var actual, predicted int
	for t := range m {
		actual += m[j][t]
		predicted += m[t][j]
	}
	if actual == 0 && predicted == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	recall = math.NaN()
	if actual > 0 {
		recall = float64(tp) / float64(actual)
	}
	if predicted > 0 {
		precision = float64(tp) / float64(predicted)
	}
	if tp == 0 {
		return precision, recall, 0
	}
	return precision, recall, 2 * precision * recall / (precision + recall)
}

// Argmax returns, for each row of k class probabilities, the most likely class and its
// probability (the first of equals).
func Argmax(probs []float32, k int) (labels []int, confidence []float64) {
	n := len(probs) / k
	labels = make([]int, n)
	confidence = make([]float64, n)
	for i := 0; i < n; i++ {
		row := probs[i*k : (i+1)*k]
		best := 0
		for j, p := range row {
			if p > row[best] {
				best = j
			}
		}
		labels[i] = best
		confidence[i] = float64(row[best])
	}
	return labels, confidence
}

// Curve is a training's mean loss per epoch: Train[i] (with dropout, as the optimizer saw it)
// and Validation[i] (on the validation rows, without dropout) after epoch i+1.
type Curve struct {
	Train      []float64 `json:"train_loss"`
	Validation []float64 `json:"validation_loss,omitempty"`
	// BestEpoch is the epoch whose weights the model has, the one of the lowest validation
	// loss, when the training kept the best (kernels.Config.KeepBest); 0: the last epoch's.
	BestEpoch int `json:"best_epoch,omitempty"`
}

// SampleSize is how many held-out rows a Sample keeps.
const SampleSize = 400

// Sample is predicted against actual values of up to SampleSize held-out rows, spread evenly
// over them, for a scatter plot.
type Sample struct {
	Predicted []float64 `json:"predicted"`
	Actual    []float64 `json:"actual"`
}

// SampleOf picks the sample of pred against truth.
func SampleOf(pred, truth []float64) *Sample {
	n := min(len(truth), SampleSize)
	s := &Sample{Predicted: make([]float64, n), Actual: make([]float64, n)}
	for i := 0; i < n; i++ {
		j := i * len(truth) / n
		s.Predicted[i], s.Actual[i] = pred[j], truth[j]
	}
	return s
}

// Evaluation is what every model's metrics say besides its figures: which rows it was fitted,
// validated and evaluated on, and, once deployed, its loss curve and a predicted-vs-actual
// sample (regression models) for people to look at.
type Evaluation struct {
	Holdout        Holdout `json:"holdout"`
	TrainRows      int     `json:"train_rows"`
	ValidationRows int     `json:"validation_rows"`
	HeldOutRows    int     `json:"held_out_rows"`
	Curve          *Curve  `json:"curve,omitempty"`
	Sample         *Sample `json:"sample,omitempty"`
}

// CrossValidation is a classifier's k-fold cross-validation on the training side: every row
// predicted by the model of the folds it is not in, its figures over those predictions, with
// the majority baseline's (each fold's majority class) on the same rows.
type CrossValidation struct {
	Folds          int            `json:"folds"`
	Rows           int            `json:"rows"`
	Classification                // the out-of-fold predictions' figures
	Baseline       Classification `json:"baseline"`
}
