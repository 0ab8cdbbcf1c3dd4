package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// maxModelRows bounds the versions the models page lists.
const maxModelRows = 500

// Models ---------------------------------------------------------------------------------

type modelsPage struct {
	Groups []modelGroup
}

// modelGroup is one model name with its versions, newest first.
type modelGroup struct {
	Name     string
	Active   int32 // the active version, 0 for none
	Versions []modelRow
}

type modelRow struct {
	gen.ListModelsRow
	Report ml.Report
	// Unreadable says why the metrics could not be read ("" when they could).
	Unreadable string
}

// Headline is the model's first figure, its main metric; nil when it has none.
func (m modelRow) Headline() *ml.Figure {
	if len(m.Report.Figures) == 0 {
		return nil
	}
	return &m.Report.Figures[0]
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	rows, err := s.q.ListModels(ctx, gen.ListModelsParams{MaxRows: maxModelRows})
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Reading ml.models failed:", err)
		return
	}
	var data modelsPage
	for _, row := range rows {
		if n := len(data.Groups); n == 0 || data.Groups[n-1].Name != row.Name {
			data.Groups = append(data.Groups, modelGroup{Name: row.Name})
		}
		g := &data.Groups[len(data.Groups)-1]
		m := modelRow{ListModelsRow: row}
		if m.Report, err = ml.ReadReport(row.Metrics); err != nil {
			m.Unreadable = err.Error()
		}
		if row.Status == ml.StatusActive {
			g.Active = row.Version
		}
		g.Versions = append(g.Versions, m)
	}
	s.render(w, r, http.StatusOK, "models", page{Title: "Models", Nav: "models", Data: data})
}

// Model ----------------------------------------------------------------------------------

type modelPage struct {
	Model        gen.GetModelRow
	Report       ml.Report
	Loss         *chart
	Scatter      *chart
	Confusion    *heatmap
	CVConfusion  *heatmap
	Architecture string
	Features     []string
}

func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	name, raw := r.PathValue("name"), r.PathValue("version")
	if !nameRE.MatchString(name) {
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no model named %q.", name), nil)
		return
	}
	version, err := strconv.ParseInt(raw, 10, 32)
	if err != nil || version < 1 {
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not a model version: versions are whole numbers from 1.", raw), nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	m, err := s.q.GetModel(ctx, gen.GetModelParams{Name: name, Version: int32(version)})
	if errors.Is(err, pgx.ErrNoRows) {
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf("Model %s has no version %d.", name, version), nil)
		return
	} else if err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Reading model %s v%d from ml.models failed:", name, version), err)
		return
	}
	rep, err := ml.ReadReport(m.Metrics)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Model %s v%d:", name, version), err)
		return
	}
	data := modelPage{Model: m, Report: rep, Architecture: pretty(m.Architecture)}
	if c := rep.Curve; c != nil {
		data.Loss = lossChart(c.Train, c.Validation, c.BestEpoch)
	}
	if sm := rep.Sample; sm != nil {
		data.Scatter = scatterChart(sm.Predicted, sm.Actual)
	}
	data.Confusion = confusionHeatmap(rep.Confusion, rep.Classes)
	if rep.CV != nil {
		data.CVConfusion = confusionHeatmap(rep.CV.Confusion, rep.Classes)
	}
	var spec struct {
		Features []string `json:"features"`
	}
	if json.Unmarshal(m.Normalization, &spec) == nil {
		data.Features = spec.Features
	}
	s.render(w, r, http.StatusOK, "model", page{Title: fmt.Sprintf("%s v%d", name, version), Nav: "models", Data: data})
}
