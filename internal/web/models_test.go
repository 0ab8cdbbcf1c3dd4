package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/enginetest"
	"github.com/quantumflow/qflow/pipelines/architecture"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// setupModels is setup with real models in the registry: two complexity versions (the second
// a challenger of the first) and an architecture classifier, trained through the engine.
func setupModels(t *testing.T) (*testBundle, enginetest.Models) {
	t.Helper()
	b := setupWith(t, enginetest.ML)
	return b, b.TrainModels(t)
}

// storedModel is a version as ml.models holds it, read the way the pages read it.
type storedModel struct {
	status, decision string
	report           ml.Report
}

func (b *testBundle) storedModel(t *testing.T, name string, version int) storedModel {
	t.Helper()
	var m storedModel
	var raw json.RawMessage
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT status, decision, metrics FROM ml.models WHERE name = $1 AND version = $2", name, version).
		Scan(&m.status, &m.decision, &raw))
	var err error
	m.report, err = ml.ReadReport(raw)
	require.NoError(t, err)
	return m
}

var (
	versionRowRE = regexp.MustCompile(`<tr data-version="(\d+)" data-status="([a-z]+)">`)
	pathPointsRE = regexp.MustCompile(`<path class="series [a-z]+" data-series="([a-z]+)" data-points="(\d+)"`)
	cellCountRE  = regexp.MustCompile(`<g class="cell (?:hit|miss)" data-count="(\d+)">`)
)

// section returns the part of a page from the first occurrence of start to the next end.
func section(t *testing.T, body, start, end string) string {
	t.Helper()
	i := strings.Index(body, start)
	require.GreaterOrEqual(t, i, 0, "%s in the page", start)
	j := strings.Index(body[i:], end)
	require.Greater(t, j, 0)
	return body[i : i+j]
}

func TestModelsPageListsEveryVersionWithItsFigureAndDecision(t *testing.T) {
	t.Parallel()
	b, _ := setupModels(t)

	body := b.page(t, "/models")
	require.Contains(t, body, `<a href="/models" class="active">Models</a>`)
	for name, versions := range map[string]int{"complexity": 2, "architecture": 1} {
		card := section(t, body, `<section class="card" data-model="`+name+`">`, "</section>")
		rows := versionRowRE.FindAllStringSubmatch(card, -1)
		require.Len(t, rows, versions, name)
		for i, row := range rows {
			v, _ := strconv.Atoi(row[1])
			require.Equal(t, versions-i, v, "%s: newest first", name)
			m := b.storedModel(t, name, v)
			require.Equal(t, m.status, row[2], "%s v%d", name, v)
			h := m.report.Figures[0]
			require.Contains(t, card, fmt.Sprintf(`<td class="num figure">%s</td>`, h.Model.Format(h.Verb)), "%s v%d's headline with its interval", name, v)
			require.Contains(t, card, h.Baseline.Format(h.Verb), "and the baseline's")
			require.Contains(t, card, fmt.Sprintf(`<a class="strong" href="/models/%s/%d">v%d</a>`, name, v, v))
		}
	}
	// The challenger was compared with v1 on rows neither trained on; its gain and the reason show.
	challenger := b.storedModel(t, "complexity", 2)
	require.NotNil(t, challenger.report.Decision.Active)
	d := challenger.report.Decision
	require.Contains(t, body, d.FormatGainEstimate(d.Active.Gain)+`<div class="muted small">over active v1</div>`)
	require.Contains(t, body, challenger.decision[:100])
}

func TestModelPagesDrawTheLossCurveAndPredictionsOrTheConfusionMatrix(t *testing.T) {
	t.Parallel()
	b, _ := setupModels(t)

	body := b.page(t, "/models/complexity/2")
	m := b.storedModel(t, "complexity", 2)
	// The loss curve: both lines, one point per epoch.
	loss := section(t, body, `data-chart="loss"`, "</svg>")
	require.Equal(t, [][]string{{"training", "30"}, {"validation", "30"}}, submatches(pathPointsRE, loss))
	require.Contains(t, loss, fmt.Sprintf(`data-marker="kept: epoch %d"`, m.report.Curve.BestEpoch), "the epoch whose weights the model kept")
	// Predicted against actual: one dot per sampled held-out row.
	scatter := section(t, body, `data-chart="scatter"`, "</svg>")
	require.Equal(t, len(m.report.Sample.Actual), strings.Count(scatter, `<circle class="point"`))
	require.Equal(t, m.report.HeldOutRows, len(m.report.Sample.Actual), "a small holdout is sampled whole")
	// The decision with its evidence: the baseline beaten, the comparison with v1.
	require.Contains(t, body, `<tr data-against="baseline" data-wins="true">`)
	require.Contains(t, body, fmt.Sprintf(`<tr data-against="active v1" data-wins="%t">`, m.report.Decision.Active.Wins))
	require.Contains(t, body, `<tr data-figure="MSE" data-rows="holdout">`)
	require.Contains(t, body, "<code>log2_context_length</code>")
	require.NotContains(t, body, "duration", "no outcome of a run is a feature")

	body = b.page(t, "/models/architecture/1")
	a := b.storedModel(t, "architecture", 1)
	k := len(architecture.Patterns)
	for _, id := range []string{`data-chart="confusion"`, `id="cv-confusion"`} {
		cells := submatches(cellCountRE, section(t, body, id, "</svg>"))
		require.Len(t, cells, k*k, id)
		total := 0
		for _, c := range cells {
			n, _ := strconv.Atoi(c[0])
			total += n
		}
		want := a.report.HeldOutRows
		if id != `data-chart="confusion"` {
			want = a.report.CV.Rows
		}
		require.Equal(t, want, total, "%s: every evaluated package in one cell", id)
	}
	require.Contains(t, body, `<tr data-figure="macro-F1" data-rows="5-fold CV">`)
	classes := section(t, body, `id="classes"`, "</section>")
	tooSmall := 0
	for _, c := range a.report.PerClass {
		require.Contains(t, classes, `<tr data-class="`+c.Class+`">`)
		if c.TooSmall {
			tooSmall++
		}
	}
	require.Equal(t, tooSmall, strings.Count(classes, `<td class="num muted too-small" colspan="3">too small to evaluate</td>`))
	require.Positive(t, tooSmall, "a few trees of the standard library leave some pattern with a handful of packages")

	for path, want := range map[string]int{
		"/models/complexity/9": http.StatusNotFound, "/models/complexity/x": http.StatusBadRequest, "/models/Bad/1": http.StatusNotFound,
	} {
		code, _ := b.get(t, path)
		require.Equal(t, want, code, path)
	}
	_, body = b.get(t, "/models/complexity/9")
	require.Contains(t, body, "Model complexity has no version 9.")
}

// submatches returns every match's groups.
func submatches(re *regexp.Regexp, s string) [][]string {
	var out [][]string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1:])
	}
	return out
}
