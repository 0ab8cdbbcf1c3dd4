package k8s_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/quantumflow/qflow/internal/enginetest"
)

// object is one manifest, as YAML decodes it.
type object map[string]any

// get walks a path of map keys and list indexes; nil where it leads nowhere.
func (o object) get(path ...any) any {
	var v any = map[string]any(o)
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func (o object) str(path ...any) string { s, _ := o.get(path...).(string); return s }

// manifests decodes every document of every YAML file here, by kind and name.
func manifests(t *testing.T) map[string]map[string]object {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string]map[string]object{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			// Into a plain map: decoding into a named map type would give nested maps that type.
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			o := object(doc)
			kind, name := o.str("kind"), o.str("metadata", "name")
			require.NotEmpty(t, o.str("apiVersion"), "%s: a document without apiVersion", f)
			require.NotEmpty(t, kind, "%s: a document without kind", f)
			require.Regexp(t, `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, name, "%s: %s needs a DNS-1123 metadata.name", f, kind)
			if out[kind] == nil {
				out[kind] = map[string]object{}
			}
			require.NotContains(t, out[kind], name, "%s: %s %s twice", f, kind, name)
			out[kind][name] = o
		}
	}
	return out
}

// flag returns the value of --name=value in a container's args.
func flag(args []any, name string) string {
	for _, a := range args {
		if s, _ := a.(string); strings.HasPrefix(s, "--"+name+"=") {
			return strings.TrimPrefix(s, "--"+name+"=")
		}
	}
	return ""
}

func TestManifestsHaveTheRightKindsAndFields(t *testing.T) {
	t.Parallel()
	m := manifests(t)
	var kinds []string
	for k := range m {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	require.Equal(t, []string{"Deployment", "ScaledObject", "TriggerAuthentication"}, kinds, "workers, their scalers; no CronJob: schedules are built in")
	require.Len(t, m["Deployment"], 2)

	classes := map[string]string{}
	for name, d := range m["Deployment"] {
		require.Equal(t, "apps/v1", d.str("apiVersion"), name)
		labels, _ := d.get("spec", "template", "metadata", "labels").(map[string]any)
		selector, _ := d.get("spec", "selector", "matchLabels").(map[string]any)
		require.NotEmpty(t, selector, "%s: spec.selector.matchLabels", name)
		for k, v := range selector {
			require.Equal(t, v, labels[k], "%s: the selector must match the pod template's labels", name)
		}
		c := object(d.get("spec", "template", "spec", "containers", 0).(map[string]any))
		require.NotEmpty(t, c.str("name"), name)
		require.NotEmpty(t, c.str("image"), name)
		args, _ := c.get("args").([]any)
		require.Equal(t, "worker", args[0], name)
		class := flag(args, "classes")
		require.Regexp(t, `^[a-z][a-z0-9_]*$`, class, "%s serves one class", name)
		classes[name] = class
		maxWorkers, err := strconv.Atoi(flag(args, "max-workers"))
		require.NoError(t, err, "%s: --max-workers", name)
		require.Positive(t, maxWorkers)
		var env []string
		for _, e := range c.get("env").([]any) {
			env = append(env, object(e.(map[string]any)).str("name"))
		}
		require.Subset(t, env, []string{"DATABASE_URL", "QFLOW_PGBOUNCER", "QFLOW_DIRECT_URL"}, "%s: behind PgBouncer, sessions direct", name)
		grace, _ := d.get("spec", "template", "spec", "terminationGracePeriodSeconds").(int)
		shutdown, err := time.ParseDuration(flag(args, "shutdown-timeout"))
		require.NoError(t, err, "%s: --shutdown-timeout", name)
		require.Greater(t, float64(grace), shutdown.Seconds(), "%s: the pod must outlive the worker's shutdown", name)
		gpus := c.get("resources", "limits", "nvidia.com/gpu")
		if class == "gpu" {
			require.Equal(t, 1, gpus, "%s: a GPU worker requests its GPU", name)
			require.Equal(t, "qflow-gpu", c.get("command", 0), name)
		} else {
			require.Nil(t, gpus, "%s: a CPU worker takes no GPU", name)
		}
	}
	require.ElementsMatch(t, []string{"cpu", "gpu"}, mapValues(classes))

	for name, s := range m["ScaledObject"] {
		require.Equal(t, "keda.sh/v1alpha1", s.str("apiVersion"), name)
		target := s.str("spec", "scaleTargetRef", "name")
		require.Contains(t, m["Deployment"], target, "%s scales a Deployment of these manifests", name)
		lo, _ := s.get("spec", "minReplicaCount").(int)
		hi, _ := s.get("spec", "maxReplicaCount").(int)
		require.LessOrEqual(t, lo, hi, name)
		require.Positive(t, hi, name)
		trig := object(s.get("spec", "triggers", 0).(map[string]any))
		require.Equal(t, "postgresql", trig.str("type"), name)
		require.Equal(t, "1", trig.str("metadata", "targetQueryValue"), "%s: the query returns workers, so one per unit", name)
		require.Contains(t, m["TriggerAuthentication"], trig.str("authenticationRef", "name"), name)
		// The query asks for the Deployment's class with its --max-workers.
		q := scalerQuery.FindStringSubmatch(trig.str("metadata", "query"))
		require.NotNil(t, q, "%s: query %q", name, trig.str("metadata", "query"))
		args := m["Deployment"][target].get("spec", "template", "spec", "containers", 0, "args").([]any)
		require.Equal(t, flag(args, "max-workers"), q[1], "%s: the query's max_workers is %s's --max-workers", name, target)
		require.Equal(t, classes[target], q[2], "%s: the query's class is the one %s serves", name, target)
	}
	for name, a := range m["TriggerAuthentication"] {
		require.Equal(t, "keda.sh/v1alpha1", a.str("apiVersion"), name)
		require.Equal(t, "connection", a.str("spec", "secretTargetRef", 0, "parameter"), "%s: KEDA's postgresql scaler takes a connection string", name)
	}
}

var scalerQuery = regexp.MustCompile(`^SELECT desired_workers FROM qflow\.autoscaling\((\d+), '([a-z_]+)'\)$`)

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestScalerQueriesReturnTheWorkersABacklogWants runs each ScaledObject's query, as KEDA
// would, against a database holding a known backlog.
func TestScalerQueriesReturnTheWorkersABacklogWants(t *testing.T) {
	t.Parallel()
	e := enginetest.New(t, enginetest.Probes)
	// 25 first steps due in the cpu queue; 5 training steps of a step limited to 3 at once.
	_, err := e.Pool.Exec(e.Ctx, `SELECT qflow.register_workflow('{"name": "train", "steps": [{"name": "fit", "worker_class": "gpu", "max_concurrency": 3}]}')`)
	require.NoError(t, err)
	_, err = e.Pool.Exec(e.Ctx, `INSERT INTO qflow.runs (workflow) SELECT 'probe_chain' FROM generate_series(1, 25)`)
	require.NoError(t, err)
	_, err = e.Pool.Exec(e.Ctx, `INSERT INTO qflow.runs (workflow) SELECT 'train' FROM generate_series(1, 5)`)
	require.NoError(t, err)
	slots := map[string]float64{"cpu": 25, "gpu": 3}

	m := manifests(t)
	require.Len(t, m["ScaledObject"], 2)
	for name, s := range m["ScaledObject"] {
		query := object(s.get("spec", "triggers", 0).(map[string]any)).str("metadata", "query")
		q := scalerQuery.FindStringSubmatch(query)
		require.NotNil(t, q, query)
		maxWorkers, _ := strconv.ParseFloat(q[1], 64)
		var got int64
		require.NoError(t, e.Pool.QueryRow(e.Ctx, query).Scan(&got), name)
		require.Equal(t, int64(math.Ceil(slots[q[2]]/maxWorkers)), got, "%s: %s", name, query)
	}
}
