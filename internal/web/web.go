// Package web is QuantumFlow's read-only web view (`qflow ui`): the runs list, a run with its
// DAG drawn as SVG, a workflow's definition and statistics, and the model registry: every
// model's versions with their figures, intervals and deployment decisions (/models), and one
// version with its loss curve, predicted-vs-actual plot or confusion matrix
// (/models/{name}/{version}).
//
// Pages are rendered on the server from embedded templates, charts as SVG computed in Go;
// there is no JavaScript build and no write action. Every number comes from the views and
// functions a psql user reads (qflow.run_overview, step_overview, status(), list_workflows(),
// workflow_stats(), step_stats()) and from ml.models, through sqlc queries, so the page and the
// terminal always agree.
package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/pipelines"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Statuses and modes a filter may name; anything else is a bad request, not an empty list.
var (
	runStatuses = []string{"pending", "running", "succeeded", "failed", "cancelled", "timed_out"}
	runModes    = []string{"workflow", "legacy"}
	nameRE      = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
)

const (
	defaultLimit = 50
	maxLimit     = 1000
	// queryTimeout bounds the database work of one page.
	queryTimeout = 10 * time.Second
	// refreshSeconds is how often a page showing live runs reloads itself.
	refreshSeconds = 2
)

// Config configures a Server.
type Config struct {
	// DB is where the views are read; a *pgxpool.Pool in practice.
	DB gen.DBTX
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
}

// Server is the web view, an http.Handler.
type Server struct {
	q      *gen.Queries
	logger *slog.Logger
	pages  map[string]*template.Template
	mux    *http.ServeMux
}

// New builds the web view's handler.
func New(cfg Config) (*Server, error) {
	if cfg.DB == nil {
		return nil, errors.New("web: Config.DB is nil")
	}
	s := &Server{q: gen.New(cfg.DB), logger: cfg.Logger, pages: map[string]*template.Template{}, mux: http.NewServeMux()}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	for _, page := range []string{"index", "run", "workflow", "models", "model", "error"} {
		t, err := template.New("base.html").Funcs(funcs).ParseFS(templateFiles, "templates/base.html", "templates/charts.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("parsing template %s: %w", page, err)
		}
		s.pages[page] = t
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, fmt.Errorf("opening embedded static files: %w", err)
	}
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /{$}", s.index)
	s.mux.HandleFunc("GET /runs/{id}", s.run)
	s.mux.HandleFunc("GET /workflows/{name}", s.workflow)
	s.mux.HandleFunc("GET /models", s.models)
	s.mux.HandleFunc("GET /models/{name}/{version}", s.model)
	s.mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".", nil)
	})
	return s, nil
}

// ServeHTTP serves a page.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Pages show run inputs and errors: keep other sites from framing them, and since the
	// view needs no script at all, allow none.
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
	s.mux.ServeHTTP(w, r)
}

// page is what every template gets; Data is the page's own.
type page struct {
	Title   string
	Nav     string // which top link is active
	Refresh int    // seconds; 0: the page does not reload itself
	Now     time.Time
	// Replica says how stale the data is when the view reads a streaming replica; nil on the
	// primary.
	Replica *replicaView
	Data    any
}

// replicaView is qflow.staleness() as a page says it.
type replicaView struct{ gen.StalenessRow }

// Behind is whether the replica has not replayed all the primary wrote (as far as it knows).
func (v replicaView) Behind() bool { return v.LagSeconds > 0 }

// Lag is how far behind the primary the page's data is, as a person says it.
func (v replicaView) Lag() string { return fmtMS(v.LagSeconds * 1000) }

// Why is what holds the replica back, when something does that it can tell.
func (v replicaView) Why() string {
	switch {
	case v.ReplayPaused:
		return "replay paused"
	case !v.Streaming:
		return "not streaming from the primary"
	}
	return ""
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.Now = time.Now()
	// Every page says how old its data is when it comes from a replica.
	if st, err := s.q.Staleness(r.Context()); err != nil {
		s.logger.Warn("reading qflow.staleness()", "path", r.URL.Path, "err", err)
	} else if st.Replica {
		p.Replica = &replicaView{st}
	}
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, p); err != nil {
		s.logger.Error("rendering page", "page", name, "path", r.URL.Path, "err", err)
		http.Error(w, "rendering the page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

type errorPage struct {
	Status  int
	Heading string
	Message string
}

// fail renders the error page; err, when set, is logged and shown (the view is bound to
// localhost by default, and a database message is what its reader needs to act).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, message string, err error) {
	if err != nil {
		s.logger.Error("serving page", "path", r.URL.Path, "err", err)
		message += " " + err.Error()
	}
	s.render(w, r, status, "error", page{
		Title: http.StatusText(status),
		Data:  errorPage{Status: status, Heading: http.StatusText(status), Message: message},
	})
}

// Index ----------------------------------------------------------------------------------

type runFilter struct {
	Workflow, Status, Mode string
	Limit                  int
}

type indexPage struct {
	Filter    runFilter
	Workflows []workflowRow
	Runs      []gen.UIRunsRow
	Statuses  []string
	Modes     []string
	Limited   bool // the list holds Limit runs: there may be more
}

type workflowRow struct {
	gen.ListWorkflowsRow
	Stats gen.UIWorkflowStatsRow
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := runFilter{Workflow: q.Get("workflow"), Status: q.Get("status"), Mode: q.Get("mode"), Limit: defaultLimit}
	if f.Status != "" && !slices.Contains(runStatuses, f.Status) {
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Unknown run status %q: use one of %s.", f.Status, strings.Join(runStatuses, ", ")), nil)
		return
	}
	if f.Mode != "" && !slices.Contains(runModes, f.Mode) {
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Unknown mode %q: use workflow or legacy.", f.Mode), nil)
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("The limit must be a whole number from 1 to %d, not %q.", maxLimit, v), nil)
			return
		}
		f.Limit = n
	}

	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	workflows, err := s.q.ListWorkflows(ctx)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Reading qflow.list_workflows() failed:", err)
		return
	}
	stats, err := s.q.UIWorkflowStats(ctx, gen.UIWorkflowStatsParams{WindowSeconds: (24 * time.Hour).Seconds()})
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Reading qflow.workflow_stats failed:", err)
		return
	}
	byName := make(map[string]gen.UIWorkflowStatsRow, len(stats))
	for _, st := range stats {
		byName[st.Workflow] = st
	}
	data := indexPage{Filter: f, Statuses: runStatuses, Modes: runModes}
	for _, wf := range workflows {
		data.Workflows = append(data.Workflows, workflowRow{ListWorkflowsRow: wf, Stats: byName[wf.Name]})
	}
	runs, err := s.q.UIRuns(ctx, gen.UIRunsParams{
		Workflow: optional(f.Workflow), Status: optional(f.Status), Mode: optional(f.Mode), MaxRows: int32(f.Limit),
	})
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Reading qflow.run_overview failed:", err)
		return
	}
	data.Runs = runs
	data.Limited = len(runs) == f.Limit
	p := page{Title: "Runs", Nav: "runs", Data: data}
	if slices.ContainsFunc(runs, func(r gen.UIRunsRow) bool { return live(r.Status) }) {
		p.Refresh = refreshSeconds
	}
	s.render(w, r, http.StatusOK, "index", p)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Run ------------------------------------------------------------------------------------

type runPage struct {
	Run     gen.UIRunRow
	DAG     dag
	Steps   []stepView
	Input   string
	Output  string
	Legacy  bool
	Missing []string // steps of the definition the run has no row for (legacy runs: all)
	// Fork names the run this one re-runs and the step it re-runs from; nil for another run.
	Fork *fork
	// Marks says which marks the DAG shows, for its legend.
	Marks struct{ Map, Cached, Reused bool }
}

// fork is where a forked run came from.
type fork struct {
	From int64
	Step string
}

type stepView struct {
	gen.UIRunStepsRow
	// Progress is the running attempt's latest report (nil: none, or not running).
	Progress *pipelines.Progress
	Attempts []attemptView
	// ShowAttempts is false when the only attempt says what the step row says already.
	ShowAttempts bool
	// Cached: the output came from the step cache. Reused: a fork took the outcome from its
	// source run. Elements: a map step's elements by status.
	Cached, Reused bool
	Elements       *elementCounts
}

// attemptView is one attempt as qflow.status() reports it.
type attemptView struct {
	Attempt    int        `json:"attempt"`
	Status     string     `json:"status"`
	Worker     *string    `json:"worker"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Error      *string    `json:"error"`
}

// DurationMS is how long the attempt ran, or has run so far.
func (a attemptView) DurationMS() int64 {
	if a.StartedAt == nil {
		return 0
	}
	end := time.Now()
	if a.FinishedAt != nil {
		end = *a.FinishedAt
	}
	return end.Sub(*a.StartedAt).Milliseconds()
}

type statusDoc struct {
	ForkedFrom *int64  `json:"forked_from"`
	ForkedStep *string `json:"forked_step"`
	Steps      []struct {
		Step     string              `json:"step"`
		Progress *pipelines.Progress `json:"progress"`
		Attempts []attemptView       `json:"attempts"`
		Cached   bool                `json:"cached"`
		Map      *elementCounts      `json:"map"`
	} `json:"steps"`
}

func (s *Server) run(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id < 1 {
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not a run id: ids are whole numbers from 1.", raw), nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	run, err := s.q.UIRun(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf("Run %d does not exist.", id), nil)
		return
	} else if err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Reading run %d from qflow.run_overview failed:", id), err)
		return
	}
	def, err := s.q.UIVersionSteps(ctx, gen.UIVersionStepsParams{Workflow: run.Workflow, Version: run.Version})
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Reading the definition of %s v%d failed:", run.Workflow, run.Version), err)
		return
	}
	marks, err := s.marks(ctx, run.Workflow, run.Version)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Reading the marks of %s v%d failed:", run.Workflow, run.Version), err)
		return
	}
	rows, err := s.q.UIRunSteps(ctx, id)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Reading the steps of run %d from qflow.step_overview failed:", id), err)
		return
	}
	statusRaw, err := s.q.RunStatus(ctx, id)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Reading qflow.status(%d) failed:", id), err)
		return
	}
	var doc statusDoc
	if err := json.Unmarshal(statusRaw, &doc); err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Decoding qflow.status(%d) failed:", id), err)
		return
	}
	attempts := map[string][]attemptView{}
	progress := map[string]*pipelines.Progress{}
	cached := map[string]bool{}
	elements := map[string]*elementCounts{}
	for _, st := range doc.Steps {
		attempts[st.Step] = st.Attempts
		progress[st.Step] = st.Progress
		cached[st.Step] = st.Cached
		elements[st.Step] = st.Map
	}

	data := runPage{Run: run, Legacy: run.Mode == "legacy", Input: pretty(run.Input), Output: pretty(run.Output)}
	reused := map[string]bool{}
	if doc.ForkedFrom != nil && doc.ForkedStep != nil {
		data.Fork = &fork{From: *doc.ForkedFrom, Step: *doc.ForkedStep}
		names, err := s.q.ForkReused(ctx, id)
		if err != nil {
			s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Reading the steps run %d reused failed:", id), err)
			return
		}
		for _, n := range names {
			reused[n] = true
		}
	}
	byStep := map[string]gen.UIRunStepsRow{}
	for _, row := range rows {
		byStep[row.Step] = row
		at := attempts[row.Step]
		var p *pipelines.Progress
		if row.Status == "running" {
			p = progress[row.Step]
		}
		data.Steps = append(data.Steps, stepView{
			UIRunStepsRow: row, Attempts: at, Progress: p,
			ShowAttempts: len(at) > 1 || (len(at) == 1 && at[0].Status != row.Status),
			Cached:       cached[row.Step], Reused: reused[row.Step], Elements: elements[row.Step],
		})
	}
	states := map[string]nodeState{}
	for _, st := range def {
		row, ok := byStep[st.Name]
		if !ok {
			data.Missing = append(data.Missing, st.Name)
			continue
		}
		ns := nodeState{Status: row.Status, Attempt: row.Attempt, MaxAttempts: row.MaxAttempts,
			Cached: cached[st.Name], Elements: elements[st.Name]}
		if reused[st.Name] {
			ns.ReusedFrom = data.Fork.From
		}
		if row.StartedAt.Valid {
			ns.DurationMS = durationMS(row.StartedAt, row.FinishedAt)
			ns.HasDuration = true
		}
		states[st.Name] = ns
		data.Marks.Map = data.Marks.Map || ns.Elements != nil
		data.Marks.Cached = data.Marks.Cached || ns.Cached
		data.Marks.Reused = data.Marks.Reused || ns.ReusedFrom != 0
	}
	data.DAG, err = buildDAG(def, marks, states)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Drawing the DAG of run %d failed:", id), err)
		return
	}
	p := page{Title: fmt.Sprintf("Run %d · %s", run.ID, run.Workflow), Nav: "runs", Data: data}
	if live(run.Status) {
		p.Refresh = refreshSeconds
	}
	s.render(w, r, http.StatusOK, "run", p)
}

// marks reads what the DAG marks on each step of a workflow version: map, cache, condition.
func (s *Server) marks(ctx context.Context, workflow string, version int32) (map[string]gen.DAGStepsRow, error) {
	rows, err := s.q.DAGSteps(ctx, gen.DAGStepsParams{Workflow: workflow, Version: &version})
	if err != nil {
		return nil, err
	}
	out := make(map[string]gen.DAGStepsRow, len(rows))
	for _, r := range rows {
		out[r.Name] = r
	}
	return out, nil
}

// durationMS is a step's time so far: to its finish, or to now while it runs.
func durationMS(start, end pgtype.Timestamptz) int64 {
	if !start.Valid {
		return 0
	}
	stop := time.Now()
	if end.Valid {
		stop = end.Time
	}
	return stop.Sub(start.Time).Milliseconds()
}

// Workflow -------------------------------------------------------------------------------

// statsWindow is a window over which the workflow page shows statistics.
type statsWindow struct {
	Key   string // in the URL: ?window=7d
	Label string
	D     time.Duration
}

// windows are the stats windows the workflow page offers; the first is the default, the
// window of the qflow.workflow_stats view.
var windows = []statsWindow{
	{"24h", "24 hours", 24 * time.Hour},
	{"1h", "1 hour", time.Hour},
	{"7d", "7 days", 7 * 24 * time.Hour},
	{"30d", "30 days", 30 * 24 * time.Hour},
}

type workflowPage struct {
	Workflow gen.UIWorkflowVersionRow
	Runs     gen.ListWorkflowsRow // all-time runs by status, as list_workflows() counts them
	Steps    []gen.UIVersionStepsRow
	DAG      dag
	Window   string
	Windows  []windowLink
	Stats    gen.UIWorkflowStatsRow
	StepRows []gen.UIStepStatsRow
	Recent   []gen.UIRunsRow
}

type windowLink struct {
	Key, Label, URL string
	Active          bool
}

func (s *Server) workflow(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !nameRE.MatchString(name) {
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no workflow named %q.", name), nil)
		return
	}
	key := r.URL.Query().Get("window")
	if key == "" {
		key = windows[0].Key
	}
	i := slices.IndexFunc(windows, func(w statsWindow) bool { return w.Key == key })
	if i < 0 {
		keys := make([]string, len(windows))
		for j, w := range windows {
			keys[j] = w.Key
		}
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Unknown stats window %q: use one of %s.", key, strings.Join(keys, ", ")), nil)
		return
	}
	window := windows[i]

	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	wf, err := s.q.UIWorkflowVersion(ctx, name)
	if errors.Is(err, pgx.ErrNoRows) {
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no workflow named %q.", name), nil)
		return
	} else if err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Reading workflow %s failed:", name), err)
		return
	}
	data := workflowPage{Workflow: wf, Window: window.Label}
	for _, o := range windows {
		data.Windows = append(data.Windows, windowLink{
			Key: o.Key, Label: o.Label, Active: o.Key == window.Key,
			URL: "/workflows/" + url.PathEscape(name) + "?window=" + o.Key,
		})
	}
	if data.Steps, err = s.q.UIVersionSteps(ctx, gen.UIVersionStepsParams{Workflow: name, Version: wf.Version}); err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Reading the steps of %s failed:", name), err)
		return
	}
	marks, err := s.marks(ctx, name, wf.Version)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Reading the marks of %s failed:", name), err)
		return
	}
	if data.DAG, err = buildDAG(data.Steps, marks, nil); err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Drawing the DAG of %s failed:", name), err)
		return
	}
	all, err := s.q.ListWorkflows(ctx)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "Reading qflow.list_workflows() failed:", err)
		return
	}
	for _, row := range all {
		if row.Name == name {
			data.Runs = row
		}
	}
	stats, err := s.q.UIWorkflowStats(ctx, gen.UIWorkflowStatsParams{WindowSeconds: window.D.Seconds(), Workflow: &name})
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Reading qflow.workflow_stats of %s failed:", name), err)
		return
	}
	if len(stats) == 1 {
		data.Stats = stats[0]
	}
	if data.StepRows, err = s.q.UIStepStats(ctx, gen.UIStepStatsParams{WindowSeconds: window.D.Seconds(), Workflow: name}); err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Reading qflow.step_stats of %s failed:", name), err)
		return
	}
	if data.Recent, err = s.q.UIRuns(ctx, gen.UIRunsParams{Workflow: &name, MaxRows: 10}); err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Sprintf("Reading the runs of %s failed:", name), err)
		return
	}
	s.render(w, r, http.StatusOK, "workflow", page{Title: name, Nav: "workflows", Data: data})
}

// live says whether a run may still change.
func live(status string) bool { return status == "pending" || status == "running" }

// pretty indents a JSON document for a <pre>; "" for none.
func pretty(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}
