package complexity

import (
	"math"
	"time"

	"github.com/quantumflow/qflow/pipelines/ml"
)

// taskKind is a task type of the generator: how common it is, its base complexity and whether
// it is "hard" (long contexts and tool use weigh more).
type taskKind struct {
	name  string
	share float64
	base  float64
	hard  bool
}

var taskKinds = []taskKind{
	{"classification", 0.15, 0.10, false},
	{"extraction", 0.15, 0.20, false},
	{"translation", 0.10, 0.25, false},
	{"chat", 0.20, 0.30, false},
	{"summarization", 0.15, 0.35, false},
	{"code_generation", 0.15, 0.55, true},
	{"reasoning", 0.10, 0.65, true},
}

// catalogModel is a model the generated tasks run on; prices are USD per million tokens.
type catalogModel struct {
	name    string
	params  int64
	in, out float64
}

var catalog = []catalogModel{
	{"qf-nano-1b", 1_300_000_000, 0.04, 0.08},
	{"qf-small-8b", 8_000_000_000, 0.15, 0.60},
	{"qf-medium-32b", 32_000_000_000, 0.50, 1.50},
	{"qf-large-70b", 70_000_000_000, 0.90, 2.70},
	{"qf-xl-400b", 400_000_000_000, 3.00, 12.00},
	{"qf-frontier-1t", 1_000_000_000_000, 10.00, 30.00},
}

func clamp01(v float64) float64 { return math.Min(1, math.Max(0, v)) }

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// HiddenComplexity is the true complexity of a task, the function generated labels follow
// (before noise). It depends only on what is known when the task is submitted. With
//
//	lc = clamp((log2(context_length) - 7) / 10, 0, 1)     context 128 → 0, 128k → 1
//	h  = 1 for code_generation and reasoning, else 0
//	z  = base(task) + 0.30·lc + 0.20·lc·h + 0.08·tools + 0.04·tools·h + 0.06·vision·(1-h)
//
// it is sigmoid(7·(z - 0.52)). base is classification 0.10, extraction 0.20, translation
// 0.25, chat 0.30, summarization 0.35, code_generation 0.55, reasoning 0.65; an unknown task
// type counts as chat. The interactions (context and tools matter more for hard tasks,
// vision only for easy ones) and the squashing make it nonlinear in every input.
func HiddenComplexity(t Task) float64 {
	k := taskKinds[3]
	for _, kind := range taskKinds {
		if kind.name == t.TaskType {
			k = kind
		}
	}
	lc := clamp01((math.Log2(math.Max(float64(t.ContextLength), 1)) - 7) / 10)
	h := b2f(k.hard)
	tools, vision := b2f(t.UsesTools), b2f(t.UsesVision)
	z := k.base + 0.30*lc + 0.20*lc*h + 0.08*tools + 0.04*tools*h + 0.06*vision*(1-h)
	return sigmoid(7 * (z - 0.52))
}

// LabelNoise is the standard deviation of the Gaussian noise on generated labels.
const LabelNoise = 0.04

// GenerateOptions shape generated records.
type GenerateOptions struct {
	// Rows is how many records to make.
	Rows int
	// Days spreads executed_at uniformly over the last Days days before Now.
	Days float64
	Now  time.Time
	// Unlabelled is the share of records without an observed complexity.
	Unlabelled float64
	Seed       uint64
}

// Generate makes realistic task execution records whose observed complexity is
// HiddenComplexity plus noise, clamped to [0, 1] (see the package documentation), and whose
// outcomes are drawn from the true complexity, as real ones would depend on it. The same
// options give the same records.
func Generate(o GenerateOptions) []Record {
	r := ml.Rand(o.Seed, 7)
	norm := func() float64 { return r.NormFloat64() }
	recs := make([]Record, o.Rows)
	for i := range recs {
		u := r.Float64()
		k := taskKinds[len(taskKinds)-1]
		for _, t := range taskKinds {
			if u < t.share {
				k = t
				break
			}
			u -= t.share
		}
		// Hard tasks come with longer contexts; classification answers are short.
		cu := r.Float64()
		if k.hard {
			cu = math.Sqrt(cu)
		}
		task := Task{
			TaskType:      k.name,
			ContextLength: int(math.Round(math.Exp2(7 + 10*cu))),
			UsesTools:     r.Float64() < 0.15+0.35*b2f(k.hard),
			UsesVision:    r.Float64() < 0.10,
		}
		c := HiddenComplexity(task)

		// What running it produced follows from its complexity: longer answers to harder tasks
		// (classification answers stay short), ...
		out := int(math.Round(math.Exp2(4+8*clamp01(0.25+0.6*c+0.25*norm())))) - 1
		if k.name == "classification" {
			out = 1 + int(math.Round(math.Exp2(1+4*r.Float64())))
		}

		// ... bigger models for harder tasks, not always, ...
		tier := int(math.Round(math.Min(float64(len(catalog)-1), math.Max(0, c*float64(len(catalog)-1)+norm()))))
		m := catalog[tier]
		lp := (math.Log10(float64(m.params)) - 9) / 3

		// ... and the time, quality, success and satisfaction those make.
		speed := 4 + 25*lp // ms per output token
		dur := (300 + 0.015*float64(task.ContextLength)*(0.5+lp) + speed*float64(out)) * (0.7 + 1.6*c) * math.Exp(0.25*norm())
		quality := clamp01(0.95 - 0.55*c + 0.25*lp*c + 0.05*norm())
		success := r.Float64() < sigmoid(10*(quality-0.4))
		sat := 0
		if r.Float64() < 0.6 {
			sat = int(math.Round(math.Min(5, math.Max(1, 1+4*quality+0.5*norm()))))
		}
		observed := clamp01(c + LabelNoise*norm())
		if r.Float64() < o.Unlabelled {
			observed = -1
		}
		ago := time.Duration(r.Float64() * o.Days * float64(24*time.Hour))
		recs[i] = Record{
			Task: task, Model: m.name, OutputTokens: out, ParameterCount: m.params, InputPrice: m.in, OutputPrice: m.out,
			DurationMS: int(dur), Success: success, QualityScore: quality, UserSatisfaction: sat,
			ObservedComplexity: observed, ExecutedAt: o.Now.Add(-ago).Truncate(time.Microsecond),
		}
	}
	return recs
}

// LabelVariance is the variance of a generated label of a task whose true complexity is c:
// that of clamp(c + ε, 0, 1) with ε ~ N(0, LabelNoise²). Clamping makes it smaller than
// LabelNoise² near 0 and 1. No predictor can do better on such a label than its mean, with
// this squared error on average.
func LabelVariance(c float64) float64 {
	mean, second := clampedMoments(c, LabelNoise)
	return second - mean*mean
}

// clampedMoments are E[Y] and E[Y²] of Y = clamp(X, 0, 1), X ~ N(mu, sigma²).
func clampedMoments(mu, sigma float64) (mean, second float64) {
	phi := func(z float64) float64 { return math.Exp(-z*z/2) / math.Sqrt(2*math.Pi) }
	cdf := func(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }
	a, b := -mu/sigma, (1-mu)/sigma
	inside := cdf(b) - cdf(a)
	above := 1 - cdf(b)
	ez := phi(a) - phi(b)               // E[Z; a < Z < b]
	ez2 := inside + a*phi(a) - b*phi(b) // E[Z²; a < Z < b]
	mean = above + mu*inside + sigma*ez // X is 1 above b, itself between
	second = above + mu*mu*inside + 2*mu*sigma*ez + sigma*sigma*ez2
	return mean, second
}

// Ceiling is the best mean squared error any model of the tasks can reach on generated labels
// of recs: the mean of LabelVariance over their true complexities. The label's noise is all
// that is left once a model knows the task, since HiddenComplexity depends on nothing else.
func Ceiling(recs []Record) float64 {
	if len(recs) == 0 {
		return 0
	}
	var sum float64
	for _, r := range recs {
		sum += LabelVariance(HiddenComplexity(r.Task))
	}
	return sum / float64(len(recs))
}
