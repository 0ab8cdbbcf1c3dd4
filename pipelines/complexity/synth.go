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
// (before noise). With
//
//	lc = clamp((log2(context_length) - 7) / 10, 0, 1)     context 128 → 0, 128k → 1
//	lo = clamp((log2(1 + output_tokens) - 4) / 8, 0, 1)   output 15 → 0, 4k → 1
//	h  = 1 for code_generation and reasoning, else 0
//	z  = base(task) + 0.25·lc + 0.10·lo + 0.20·lc·h + 0.08·tools + 0.04·tools·h + 0.06·vision·(1-h)
//
// it is sigmoid(7·(z - 0.55)). base is classification 0.10, extraction 0.20, translation
// 0.25, chat 0.30, summarization 0.35, code_generation 0.55, reasoning 0.65; an unknown task
// type counts as chat. The interactions (context and tools matter more for hard tasks,
// vision only for easy ones) and the squashing make it nonlinear in every input.
func HiddenComplexity(taskType string, contextLength, outputTokens int, tools, vision bool) float64 {
	k := taskKinds[3]
	for _, t := range taskKinds {
		if t.name == taskType {
			k = t
		}
	}
	lc := clamp01((math.Log2(math.Max(float64(contextLength), 1)) - 7) / 10)
	lo := clamp01((math.Log2(1+math.Max(float64(outputTokens), 0)) - 4) / 8)
	h := b2f(k.hard)
	z := k.base + 0.25*lc + 0.10*lo + 0.20*lc*h + 0.08*b2f(tools) + 0.04*b2f(tools)*h + 0.06*b2f(vision)*(1-h)
	return sigmoid(7 * (z - 0.55))
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
// HiddenComplexity plus noise (see the package documentation). The same options give the
// same records.
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
		ctxLen := int(math.Round(math.Exp2(7 + 10*cu)))
		out := int(math.Round(math.Exp2(4+8*r.Float64()))) - 1
		if k.name == "classification" {
			out = 1 + int(math.Round(math.Exp2(1+4*r.Float64())))
		}
		tools := r.Float64() < 0.15+0.35*b2f(k.hard)
		vision := r.Float64() < 0.10
		c := HiddenComplexity(k.name, ctxLen, out, tools, vision)

		// Harder tasks are sent to bigger models, not always.
		tier := int(math.Round(math.Min(float64(len(catalog)-1), math.Max(0, c*float64(len(catalog)-1)+norm()))))
		m := catalog[tier]
		lp := (math.Log10(float64(m.params)) - 9) / 3

		speed := 4 + 25*lp // ms per output token
		dur := (300 + 0.015*float64(ctxLen)*(0.5+lp) + speed*float64(out)) * (0.7 + 1.6*c) * math.Exp(0.25*norm())
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
			TaskType: k.name, Model: m.name, ContextLength: ctxLen, OutputTokens: out, ParameterCount: m.params,
			InputPrice: m.in, OutputPrice: m.out, UsesTools: tools, UsesVision: vision,
			DurationMS: int(dur), Success: success, QualityScore: quality, UserSatisfaction: sat,
			ObservedComplexity: observed, ExecutedAt: o.Now.Add(-ago).Truncate(time.Microsecond),
		}
	}
	return recs
}
