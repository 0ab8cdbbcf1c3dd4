package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// bar is one labelled value of a chart; bars of a group share a colour index.
type bar struct {
	label  string
	value  float64
	series int
}

// chart is a titled horizontal bar chart.
type chart struct {
	title string
	unit  string
	bars  []bar
}

var palette = []color.RGBA{
	{0x2b, 0x6c, 0xb0, 0xff}, // engine
	{0xc0, 0x56, 0x21, 0xff}, // River chain
	{0x5a, 0x8f, 0x29, 0xff}, // legacy
	{0x7a, 0x4e, 0xa3, 0xff}, // other
}

// plot draws the results as a PNG: throughput per scenario and hop latency percentiles.
func plot(path string, res Result) error {
	var tp chart
	tp.title, tp.unit = "Throughput (steps or hops per second)", "/s"
	for _, p := range res.ByInFlight {
		tp.bars = append(tp.bars,
			bar{fmt.Sprintf("engine, %d in flight", p.InFlight), p.EngineStepsPerSec, 0},
			bar{fmt.Sprintf("no eager dispatch, %d in flight", p.InFlight), p.EngineQueuedStepsPerSec, 3},
			bar{fmt.Sprintf("River chain, %d in flight", p.InFlight), p.RiverChainHopsPerSec, 1},
			bar{fmt.Sprintf("legacy, %d in flight", p.InFlight), p.LegacyStepsPerSec, 2})
	}
	for _, p := range res.WorkersScaling {
		tp.bars = append(tp.bars, bar{fmt.Sprintf("engine, %d process(es)", p.Processes), p.StepsPerSec, 0})
	}
	if res.HistoryRuns > 0 {
		tp.bars = append(tp.bars, bar{fmt.Sprintf("engine, %dk finished runs", res.HistoryRuns/1000), res.EngineHistory, 0})
	}
	if res.Bulk != nil {
		tp.bars = append(tp.bars, bar{fmt.Sprintf("engine, bulk %d runs", res.Bulk.Runs), res.Bulk.StepsPerSec, 0})
	}
	lat := chart{title: "Hop latency (ms)", unit: " ms"}
	for _, l := range []struct {
		name string
		p    Percentiles
	}{{"idle", res.HopLatencyIdleMS}, {"under load", res.HopLatencyLoadMS}} {
		if l.p.N == 0 {
			continue
		}
		lat.bars = append(lat.bars,
			bar{l.name + " p50", l.p.P50, 3}, bar{l.name + " p95", l.p.P95, 3}, bar{l.name + " p99", l.p.P99, 3})
	}

	const width, rowH, labelW, margin = 900, 18, 230, 16
	charts := []chart{tp, lat}
	height := margin
	for _, c := range charts {
		height += 2*rowH + len(c.bars)*rowH + margin
	}
	height += rowH
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	ink := color.RGBA{0x22, 0x22, 0x22, 0xff}

	y := margin
	text(img, margin, y+12, fmt.Sprintf("QuantumFlow bench, commit %s, %s", res.Commit, res.Date), ink)
	y += rowH
	for _, c := range charts {
		text(img, margin, y+12, c.title, ink)
		y += rowH + 4
		max := 0.0
		for _, b := range c.bars {
			if b.value > max {
				max = b.value
			}
		}
		for _, b := range c.bars {
			text(img, margin, y+12, b.label, ink)
			w := 0
			if max > 0 {
				w = int(b.value / max * float64(width-labelW-2*margin-90))
			}
			r := image.Rect(margin+labelW, y+3, margin+labelW+w, y+rowH-3)
			draw.Draw(img, r, image.NewUniform(palette[b.series%len(palette)]), image.Point{}, draw.Src)
			text(img, margin+labelW+w+6, y+12, fmt.Sprintf("%.1f%s", b.value, c.unit), ink)
			y += rowH
		}
		y += margin
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func text(img *image.RGBA, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
