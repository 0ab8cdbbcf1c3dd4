package web

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The models pages draw their charts on the server, as the DAG is drawn: geometry computed
// here, SVG written by templates/charts.html, colours in style.css. No script, no library.

// chart is a plot frame with its ticks and what is drawn in it, in SVG user units.
type chart struct {
	Width, Height float64
	// Left, Top, Right, Bottom bound the plot area.
	Left, Top, Right, Bottom float64
	XTicks, YTicks           []tick
	XLabel, YLabel           string
	Lines                    []chartLine
	Points                   []chartPoint
	// Diagonal is the path of y = x, for predicted against actual; "" for none.
	Diagonal string
	// Marker is a vertical line at an x value with its label (the epoch whose weights a model
	// kept); nil for none.
	Marker *marker
}

type marker struct {
	X     float64
	Label string
	// TextX and Anchor place the label beside the line, below the legend, on whichever side
	// has room.
	TextX, TextY float64
	Anchor       string
}

type tick struct {
	At    float64 // the pixel on its axis
	Label string
}

// chartLine is one series of a line chart, with its legend entry.
type chartLine struct {
	Name, Class, Path string
	N                 int
	LegendX, LegendY  float64
}

type chartPoint struct{ X, Y float64 }

// axis maps values in [lo, hi] to pixels in [from, to], on a log10 scale when log is set.
type axis struct {
	lo, hi, from, to float64
	log              bool
}

func (a axis) at(v float64) float64 {
	lo, hi := a.lo, a.hi
	if a.log {
		v, lo, hi = math.Log10(math.Max(v, a.lo)), math.Log10(lo), math.Log10(hi)
	}
	if hi == lo {
		return (a.from + a.to) / 2
	}
	// A tenth of a unit is finer than a screen shows, and keeps the SVG short.
	return math.Round((a.from+(v-lo)/(hi-lo)*(a.to-a.from))*10) / 10
}

// ticks are about n round values within the axis, each labelled.
func (a axis) ticks(n int) []tick {
	var out []tick
	if a.log {
		for e := math.Floor(math.Log10(a.lo)); e <= math.Ceil(math.Log10(a.hi)); e++ {
			for _, m := range []float64{1, 2, 5} {
				if v := m * math.Pow(10, e); v >= a.lo && v <= a.hi {
					out = append(out, tick{At: a.at(v), Label: short3(v)})
				}
			}
		}
		return out
	}
	step := niceStep((a.hi - a.lo) / float64(n))
	for v := math.Ceil(a.lo/step) * step; v <= a.hi+step*1e-9; v += step {
		out = append(out, tick{At: a.at(v), Label: short3(v)})
	}
	return out
}

// niceStep rounds a step up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// short3 writes a tick value with at most three significant digits.
func short3(v float64) string {
	if math.Abs(v) < 1e-12 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// frame is a chart of the given size with room for tick labels on the left and below.
func frame(width, height float64) chart {
	return chart{Width: width, Height: height, Left: 62, Top: 14, Right: width - 16, Bottom: height - 44}
}

// lossChart draws training and validation loss per epoch, on a log scale when they span more
// than a factor of ten (a loss falls by orders of magnitude in the first epochs), and marks
// the epoch whose weights the model kept (best, from 1; 0 for the last, which needs no mark).
func lossChart(train, validation []float64, best int) *chart {
	if len(train) == 0 {
		return nil
	}
	c := frame(620, 300)
	c.XLabel, c.YLabel = "epoch", "mean loss"
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range append(append([]float64(nil), train...), validation...) {
		if v > 0 && !math.IsInf(v, 0) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0, 1
	}
	y := axis{lo: lo, hi: hi, from: c.Bottom, to: c.Top, log: lo > 0 && hi/lo > 10}
	if y.log {
		y.lo, y.hi = lo/1.15, hi*1.15
	} else {
		pad := (hi - lo) * 0.08
		y.lo, y.hi = math.Max(0, lo-pad), hi+pad
	}
	x := axis{lo: 1, hi: float64(max(len(train), 2)), from: c.Left, to: c.Right}
	c.XTicks, c.YTicks = x.ticks(8), y.ticks(5)
	for i, s := range []struct {
		name, class string
		values      []float64
	}{{"training", "train", train}, {"validation", "validation", validation}} {
		if len(s.values) == 0 {
			continue
		}
		var b strings.Builder
		for e, v := range s.values {
			cmd := "L"
			if e == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&b, "%s%.1f %.1f ", cmd, x.at(float64(e+1)), y.at(v))
		}
		c.Lines = append(c.Lines, chartLine{Name: s.name, Class: s.class, Path: strings.TrimSpace(b.String()), N: len(s.values),
			LegendX: c.Right - 150, LegendY: c.Top + 14 + 18*float64(i)})
	}
	if best > 0 && best <= len(train) {
		m := &marker{X: x.at(float64(best)), Label: fmt.Sprintf("kept: epoch %d", best), TextY: c.Top + 56, Anchor: "end"}
		m.TextX = m.X - 5
		if m.X-c.Left < 110 {
			m.TextX, m.Anchor = m.X+5, "start"
		}
		c.Marker = m
	}
	return &c
}

// scatterChart draws predicted against actual values with the line of perfect predictions;
// scores in [0, 1] keep that range.
func scatterChart(predicted, actual []float64) *chart {
	if len(actual) == 0 {
		return nil
	}
	c := frame(420, 380)
	c.XLabel, c.YLabel = "actual", "predicted"
	lo, hi := 0.0, 1.0
	for _, v := range append(append([]float64(nil), predicted...), actual...) {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	x := axis{lo: lo, hi: hi, from: c.Left, to: c.Right}
	y := axis{lo: lo, hi: hi, from: c.Bottom, to: c.Top}
	c.XTicks, c.YTicks = x.ticks(4), y.ticks(4)
	for i := range actual {
		c.Points = append(c.Points, chartPoint{X: x.at(actual[i]), Y: y.at(predicted[i])})
	}
	c.Diagonal = fmt.Sprintf("M%.1f %.1f L%.1f %.1f", x.at(lo), y.at(lo), x.at(hi), y.at(hi))
	return &c
}

// heatmap is a confusion matrix drawn as a grid: rows are true classes, columns predicted
// ones, each cell shaded by its share of its row (the recall of the diagonal).
type heatmap struct {
	Width, Height float64
	Cell          float64
	Cells         []heatCell
	RowLabels     []heatLabel
	ColLabels     []heatLabel
	// Top is where the grid starts below the column labels; Left where it starts after the
	// row labels.
	Top, Left float64
}

type heatCell struct {
	X, Y, TextX, TextY float64
	Count              int
	// Share is the cell's share of its row, its fill opacity.
	Share    float64
	Diagonal bool
	Title    string
}

type heatLabel struct {
	X, Y float64
	Text string
}

// confusionHeatmap lays out m (m[t][p]: rows of true class t predicted as p) with its classes.
func confusionHeatmap(m [][]int, classes []string) *heatmap {
	k := len(m)
	if k == 0 || len(classes) != k {
		return nil
	}
	const cell, left, top = 38.0, 150.0, 120.0
	h := &heatmap{Cell: cell, Left: left, Top: top, Width: left + cell*float64(k) + 60, Height: top + cell*float64(k) + 10}
	for t, row := range m {
		total := 0
		for _, n := range row {
			total += n
		}
		y := top + cell*float64(t)
		h.RowLabels = append(h.RowLabels, heatLabel{X: left - 8, Y: y + cell/2 + 4, Text: fmt.Sprintf("%s (%d)", classes[t], total)})
		for p, n := range row {
			x := left + cell*float64(p)
			share := 0.0
			if total > 0 {
				share = float64(n) / float64(total)
			}
			h.Cells = append(h.Cells, heatCell{X: x, Y: y, TextX: x + cell/2, TextY: y + cell/2 + 4, Count: n, Share: share, Diagonal: t == p,
				Title: fmt.Sprintf("%d %s predicted as %s (%.0f%% of %s)", n, classes[t], classes[p], 100*share, classes[t])})
		}
	}
	for p, name := range classes {
		h.ColLabels = append(h.ColLabels, heatLabel{X: left + cell*float64(p) + cell/2, Y: top - 8, Text: name})
	}
	return h
}
