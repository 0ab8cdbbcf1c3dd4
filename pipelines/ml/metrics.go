package ml

import "math"

// Regression holds held-out metrics of a score in [0, 1].
type Regression struct {
	MSE float64 `json:"mse"`
	// R2 is 1 - SSE/SST against the held-out mean: 0 for predicting that mean, negative for worse.
	R2 float64 `json:"r2"`
	// Accuracy is the share of predictions within the tolerance of the truth.
	Accuracy float64 `json:"accuracy"`
}

// RegressionMetrics scores pred against truth; accuracy counts |pred - truth| < tolerance.
func RegressionMetrics(pred, truth []float64, tolerance float64) Regression {
	n := len(truth)
	if n == 0 {
		return Regression{}
	}
	var mean float64
	for _, y := range truth {
		mean += y
	}
	mean /= float64(n)
	var sse, sst float64
	within := 0
	for i, y := range truth {
		d := pred[i] - y
		sse += d * d
		sst += (y - mean) * (y - mean)
		if math.Abs(d) < tolerance {
			within++
		}
	}
	r := Regression{MSE: sse / float64(n), Accuracy: float64(within) / float64(n)}
	if sst > 0 {
		r.R2 = 1 - sse/sst
	}
	return r
}

// Classification holds held-out metrics of a classifier over classes 0..K-1.
type Classification struct {
	Accuracy float64 `json:"accuracy"`
	// MacroF1 is the unweighted mean F1 over the classes that occur in the truth or the
	// predictions (a class neither holds nor is predicted says nothing either way).
	MacroF1 float64 `json:"macro_f1"`
	// Confusion[t][p] counts samples of true class t predicted as p.
	Confusion [][]int `json:"confusion"`
}

// ClassificationMetrics scores predicted labels against true ones.
func ClassificationMetrics(pred, truth []int, classes int) Classification {
	c := Classification{Confusion: make([][]int, classes)}
	for i := range c.Confusion {
		c.Confusion[i] = make([]int, classes)
	}
	if len(truth) == 0 {
		return c
	}
	correct := 0
	for i, t := range truth {
		c.Confusion[t][pred[i]]++
		if t == pred[i] {
			correct++
		}
	}
	c.Accuracy = float64(correct) / float64(len(truth))
	var sum float64
	seen := 0
	for k := 0; k < classes; k++ {
		tp := c.Confusion[k][k]
		var actual, predicted int
		for j := 0; j < classes; j++ {
			actual += c.Confusion[k][j]
			predicted += c.Confusion[j][k]
		}
		if actual == 0 && predicted == 0 {
			continue
		}
		seen++
		if tp > 0 {
			p := float64(tp) / float64(predicted)
			r := float64(tp) / float64(actual)
			sum += 2 * p * r / (p + r)
		}
	}
	if seen > 0 {
		c.MacroF1 = sum / float64(seen)
	}
	return c
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
