package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// maxModels bounds the versions `qflow models` lists.
const maxModels = 500

// runModels prints the model registry as the web view's models pages show it: every version
// with its main figure and interval, the baseline's, its gain over the model that was active
// and the decision; with a name, then the details of its active version (or newest), and with
// a name and version, that version's.
func runModels(ctx context.Context, env Env, args []string) error {
	fs := newFlags("models", env)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 2 {
		return fmt.Errorf("unexpected arguments %q (usage: qflow models [name [version]])", fs.Args()[2:])
	}
	var name *string
	if fs.NArg() > 0 {
		n := fs.Arg(0)
		name = &n
	}
	version := 0
	if fs.NArg() == 2 {
		v, err := strconv.Atoi(strings.TrimPrefix(fs.Arg(1), "v"))
		if err != nil || v < 1 {
			return fmt.Errorf("%q is not a model version: versions are whole numbers from 1", fs.Arg(1))
		}
		version = v
	}
	pool, err := connect(ctx, env, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	q := gen.New(pool)

	if version == 0 {
		rows, err := q.ListModels(ctx, gen.ListModelsParams{Name: name, MaxRows: maxModels})
		if err != nil {
			return fmt.Errorf("reading ml.models: %w", err)
		}
		if len(rows) == 0 {
			if name != nil {
				return fmt.Errorf("there is no model named %q", *name)
			}
			fmt.Fprintln(env.Stdout, "no model yet: a run of complexity_training or architecture_learning deploys one")
			return nil
		}
		printModelList(env.Stdout, rows)
		if name == nil {
			return nil
		}
		version = int(rows[0].Version)
		for _, r := range rows {
			if r.Status == ml.StatusActive {
				version = int(r.Version)
			}
		}
		fmt.Fprintln(env.Stdout)
	}
	m, err := q.GetModel(ctx, gen.GetModelParams{Name: *name, Version: int32(version)})
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("model %s has no version %d", *name, version)
	} else if err != nil {
		return fmt.Errorf("reading model %s v%d: %w", *name, version, err)
	}
	rep, err := ml.ReadReport(m.Metrics)
	if err != nil {
		return fmt.Errorf("model %s v%d: %w", *name, version, err)
	}
	printModel(env.Stdout, m, rep)
	return nil
}

// printModelList prints versions, newest first within a name, each with its decision below.
func printModelList(w io.Writer, rows []gen.ListModelsRow) {
	// The table is aligned on its own, then each version's decision goes under its line.
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tVERSION\tSTATUS\tBACKEND\tRUN\tFIGURE\tMODEL\tBASELINE\tGAIN OVER THE ACTIVE ONE")
	for i, r := range rows {
		name := r.Name
		if i > 0 && rows[i-1].Name == r.Name {
			name = ""
		}
		run := "—"
		if r.TrainingRunID != nil {
			run = fmt.Sprintf("#%d", *r.TrainingRunID)
		}
		figure, model, baseline, gain := "—", "—", "—", "—"
		rep, err := ml.ReadReport(r.Metrics)
		if err != nil {
			figure = "unreadable metrics"
		} else if len(rep.Figures) > 0 {
			f := rep.Figures[0]
			figure, model = f.Name+" "+f.On, f.Model.Format(f.Verb)
			if f.Baseline != nil {
				baseline = f.Baseline.Format(f.Verb)
			}
		}
		if d := rep.Decision; d != nil && d.Active != nil {
			gain = d.FormatGainEstimate(d.Active.Gain) + " over " + d.Active.Against
		}
		fmt.Fprintf(tw, "%s\tv%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, r.Version, r.Status, r.Backend, run, figure, model, baseline, gain)
	}
	tw.Flush()
	lines := strings.Split(table.String(), "\n")
	fmt.Fprintln(w, lines[0])
	indent := strings.Repeat(" ", strings.Index(lines[0], "VERSION"))
	for i, r := range rows {
		fmt.Fprintln(w, lines[i+1])
		fmt.Fprintf(w, "%s  decision: %s\n", indent, r.Decision)
	}
}

// printModel prints one version: its facts, decision with evidence, figures, loss curve, and
// its predicted-vs-actual plot or confusion matrix and per-class figures.
func printModel(w io.Writer, m gen.GetModelRow, r ml.Report) {
	fmt.Fprintf(w, "%s v%d  %s  backend %s", m.Name, m.Version, m.Status, m.Backend)
	if m.TrainingRunID != nil {
		fmt.Fprintf(w, "  run #%d", *m.TrainingRunID)
	}
	fmt.Fprintf(w, "  created %s\n", m.CreatedAt.Time.UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(w, "rows: %d train, %d validation, %d held out", r.TrainRows, r.ValidationRows, r.HeldOutRows)
	if r.Holdout.Of != "" {
		fmt.Fprintf(w, " (holdout: %.0f%% by hash of %s)", 100*r.Holdout.Share, r.Holdout.Of)
	}
	fmt.Fprintf(w, "\n\ndecision: %s\n", m.Decision)
	if d := r.Decision; d != nil {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  against\trows\tthis model's %s\ttheirs\tgain\tneeds more than\tverdict\n", d.Metric)
		for _, c := range []*ml.Comparison{&d.Baseline, d.Active} {
			if c == nil {
				continue
			}
			verdict := "does not win"
			if c.Wins {
				verdict = "wins"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\n", c.Against, c.Rows, d.FormatScoreEstimate(c.Candidate), d.FormatScoreEstimate(c.Other),
				d.FormatGainEstimate(c.Gain), d.FormatGain(c.MinGain), verdict)
		}
		tw.Flush()
	}

	fmt.Fprintln(w, "\nfigures (95% intervals; the baseline on the same rows):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range r.Figures {
		name := f.Name
		if f.LowerIsBetter {
			name += " (lower is better)"
		}
		baseline := "—"
		if f.Baseline != nil {
			baseline = f.Baseline.Format(f.Verb)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\tbaseline %s\n", name, f.On, f.Model.Format(f.Verb), baseline)
	}
	tw.Flush()

	if c := r.Curve; c != nil && len(c.Train) > 0 {
		kept := "the last epoch's weights"
		if c.BestEpoch > 0 {
			kept = fmt.Sprintf("the weights of epoch %d, of the lowest validation loss", c.BestEpoch)
		}
		fmt.Fprintf(w, "\nloss per epoch (%d epochs; the model has %s):\n", len(c.Train), kept)
		printCurve(w, c)
	}
	if s := r.Sample; s != nil && len(s.Actual) > 0 {
		fmt.Fprintf(w, "\npredicted (up) against actual (right), %d held-out rows; / is perfect:\n", len(s.Actual))
		printScatter(w, s, 48, 16)
	}
	if len(r.Confusion) > 0 && len(r.Classes) == len(r.Confusion) {
		fmt.Fprintln(w, "\nconfusion matrix, held out (rows true, columns predicted):")
		printConfusion(w, r.Confusion, r.Classes)
		printClasses(w, r.PerClass, r.CV)
	}
	if r.CV != nil && len(r.CV.Confusion) == len(r.Classes) {
		fmt.Fprintf(w, "\nconfusion matrix, %d-fold cross-validation on %d training-side rows:\n", r.CV.Folds, r.CV.Rows)
		printConfusion(w, r.CV.Confusion, r.Classes)
	}
}

// sparks are the eight heights of a sparkline.
var sparks = []rune("▁▂▃▄▅▆▇█")

// printCurve draws the training and validation losses as sparklines on one scale (log10
// when they span more than a factor of ten), at most 60 epochs to a line.
func printCurve(w io.Writer, c *ml.Curve) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range append(append([]float64(nil), c.Train...), c.Validation...) {
		if v > 0 {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	scale := func(v float64) float64 { return v }
	if lo > 0 && hi/lo > 10 {
		scale = math.Log10
	}
	for _, s := range []struct {
		name   string
		values []float64
	}{{"training", c.Train}, {"validation", c.Validation}} {
		if len(s.values) == 0 {
			continue
		}
		step := (len(s.values) + 59) / 60
		var line []rune
		for i := 0; i < len(s.values); i += step {
			f := 0.0
			if hi > lo {
				f = (scale(math.Max(s.values[i], lo)) - scale(lo)) / (scale(hi) - scale(lo))
			}
			line = append(line, sparks[int(math.Round(f*float64(len(sparks)-1)))])
		}
		best := 0
		for i, v := range s.values {
			if v < s.values[best] {
				best = i
			}
		}
		fmt.Fprintf(w, "  %-10s %s  %.4g → %.4g (lowest %.4g at epoch %d)\n", s.name, string(line), s.values[0], s.values[len(s.values)-1],
			s.values[best], best+1)
	}
}

// printScatter plots a sample on a width×height grid of characters: '·' one row, '•' a few,
// '●' many.
func printScatter(w io.Writer, s *ml.Sample, width, height int) {
	lo, hi := 0.0, 1.0
	for i := range s.Actual {
		lo, hi = math.Min(lo, math.Min(s.Actual[i], s.Predicted[i])), math.Max(hi, math.Max(s.Actual[i], s.Predicted[i]))
	}
	cell := func(v float64, n int) int { return min(n-1, max(0, int((v-lo)/(hi-lo)*float64(n)))) }
	counts := make([][]int, height)
	for i := range counts {
		counts[i] = make([]int, width)
	}
	for i := range s.Actual {
		counts[height-1-cell(s.Predicted[i], height)][cell(s.Actual[i], width)]++
	}
	for y, row := range counts {
		var b strings.Builder
		for x, n := range row {
			switch {
			case n >= 4:
				b.WriteRune('●')
			case n >= 2:
				b.WriteRune('•')
			case n == 1:
				b.WriteRune('·')
			case cell(lo+(hi-lo)*(float64(x)+0.5)/float64(width), height) == height-1-y:
				b.WriteRune('/')
			default:
				b.WriteRune(' ')
			}
		}
		label := "      "
		switch y {
		case 0:
			label = fmt.Sprintf("%6.2f", hi)
		case height - 1:
			label = fmt.Sprintf("%6.2f", lo)
		}
		fmt.Fprintf(w, "  %s |%s|\n", label, b.String())
	}
	fmt.Fprintf(w, "         %-*.2f%*.2f\n", width/2, lo, width-width/2+1, hi)
}

// printConfusion prints a confusion matrix with numbered columns.
func printConfusion(w io.Writer, m [][]int, classes []string) {
	label, cell := 0, 1
	for t, row := range m {
		label = max(label, len(fmt.Sprintf("%d %s", t, classes[t])))
		for _, n := range row {
			cell = max(cell, len(strconv.Itoa(n)), len(strconv.Itoa(len(classes)-1)))
		}
	}
	fmt.Fprintf(w, "  %-*s", label, "")
	for p := range classes {
		fmt.Fprintf(w, " %*d", cell, p)
	}
	fmt.Fprintln(w, "  rows")
	for t, row := range m {
		fmt.Fprintf(w, "  %-*s", label, fmt.Sprintf("%d %s", t, classes[t]))
		total := 0
		for _, n := range row {
			total += n
			v := strconv.Itoa(n)
			if n == 0 {
				v = "."
			}
			fmt.Fprintf(w, " %*s", cell, v)
		}
		fmt.Fprintf(w, "  %4d\n", total)
	}
}

// printClasses prints each class's held-out (and cross-validated) F1, or says it is too small.
func printClasses(w io.Writer, held []ml.ClassScore, cv *ml.CrossValidation) {
	if len(held) == 0 {
		return
	}
	fmt.Fprintf(w, "\nper class (fewer than %d rows: too small to evaluate):\n", ml.MinSupport)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "  class\theld out\tF1"
	if cv != nil {
		header += fmt.Sprintf("\tcross-validated\tF1 (%d-fold)", cv.Folds)
	}
	fmt.Fprintln(tw, header)
	f1 := func(c ml.ClassScore) string {
		if c.TooSmall || c.F1 == nil {
			return "too small to evaluate"
		}
		return c.F1.Format("%.3f")
	}
	for i, c := range held {
		line := fmt.Sprintf("  %s\t%d\t%s", c.Class, c.Support, f1(c))
		if cv != nil && i < len(cv.Classes) {
			line += fmt.Sprintf("\t%d\t%s", cv.Classes[i].Support, f1(cv.Classes[i]))
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}
