package schema_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/quantumflow/qflow/internal/dbtest"
)

// The fuzz targets feed arbitrary bytes to the two doors of the database, a definition and a
// run input. Each call runs in a transaction that is rolled back, so calls are independent
// and parallel fuzz workers share nothing. The invariant: a clear error (one of our own, or
// Postgres refusing the bytes as JSON) and nothing written, or a consistent result.
//
//	go test ./migrations -run '^$' -fuzz FuzzRegisterWorkflow -fuzztime 60s

// clearCodes are the SQLSTATEs a refusal may carry: ours (invalid_parameter_value,
// program_limit_exceeded) and the JSON parser's.
var clearCodes = map[string]bool{
	"22023": true, // invalid_parameter_value: qflow's own checks
	"54000": true, // program_limit_exceeded: the input size limit
	"22P02": true, // invalid_text_representation: not JSON
	"22P05": true, // untranslatable_character: \u0000 in JSON text
	"22032": true, // invalid_json_text
	"22021": true, // character_not_in_repertoire: not UTF-8 text
}

// classify names the check a refusal came from. Only the Go code of the fuzz target is
// coverage-instrumented, not the SQL it calls: one branch per check makes an input that
// reaches a new check count as interesting, so the fuzzer keeps it and mutates it further.
func classify(msg string) int {
	switch {
	case strings.Contains(msg, "must be a JSON object"):
		return 0
	case strings.Contains(msg, "unknown field"):
		return 1
	case strings.Contains(msg, "must be a non-empty array"):
		return 2
	case strings.Contains(msg, "must be a number"):
		return 3
	case strings.Contains(msg, "must be a whole number"):
		return 4
	case strings.Contains(msg, "must not be below"):
		return 5
	case strings.Contains(msg, "worker_class"):
		return 6
	case strings.Contains(msg, "on_failure"):
		return 7
	case strings.Contains(msg, "resource_hints"):
		return 8
	case strings.Contains(msg, "depends_on must be an array"):
		return 9
	case strings.Contains(msg, "depends_on entries"):
		return 10
	case strings.Contains(msg, "cannot depend on itself"):
		return 11
	case strings.Contains(msg, "unknown dependency"):
		return 12
	case strings.Contains(msg, "listed twice"):
		return 13
	case strings.Contains(msg, "duplicate step"):
		return 14
	case strings.Contains(msg, "dependency cycle"):
		return 15
	case strings.Contains(msg, "unknown workflow"):
		return 16
	case strings.Contains(msg, "above the limit"):
		return 17
	case strings.Contains(msg, "map must name an array"):
		return 19
	case strings.Contains(msg, "max_items bounds"):
		return 20
	case strings.Contains(msg, "cache_key"):
		return 21
	case strings.Contains(msg, "the run input is an object"):
		return 22
	case strings.Contains(msg, "name"):
		return 18
	}
	return -1
}

func clearRefusal(t *testing.T, err error) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("not a Postgres error: %v", err)
	}
	if !clearCodes[pgErr.Code] {
		t.Fatalf("refused with SQLSTATE %s (%s): the input reached a check it should not have", pgErr.Code, pgErr.Message)
	}
	if pgErr.Code == "22023" || pgErr.Code == "54000" {
		if !strings.HasPrefix(pgErr.Message, "qflow: ") || classify(pgErr.Message) < 0 {
			t.Fatalf("a refusal that does not say where it comes from: %s", pgErr.Message)
		}
	}
}

type fuzzDB struct {
	ctx  context.Context
	conn *pgx.Conn
}

func setupFuzz(f *testing.F) *fuzzDB {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbtest.URL(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close(context.Background()) })
	return &fuzzDB{ctx: ctx, conn: conn}
}

// inTx runs f in a transaction that is always rolled back.
func (d *fuzzDB) inTx(t *testing.T, f func(tx pgx.Tx)) {
	tx, err := d.conn.Begin(d.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(d.ctx) //nolint:errcheck
	f(tx)
}

func scalar[T any](t *testing.T, tx pgx.Tx, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := tx.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// statement runs sql under a savepoint, so that a refused statement leaves the transaction usable.
func statement(tx pgx.Tx, sql string, args ...any) (pgx.Row, func() error) {
	ctx := context.Background()
	if _, err := tx.Exec(ctx, "SAVEPOINT fuzz"); err != nil {
		return nil, func() error { return err }
	}
	return tx.QueryRow(ctx, sql, args...), func() error {
		_, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT fuzz")
		return err
	}
}

func FuzzRegisterWorkflow(f *testing.F) {
	for _, seed := range []string{
		`{"name":"w","steps":[{"name":"a"},{"name":"b","depends_on":["a"]}]}`,
		`{"name":"w","timeout_ms":60000,"description":"d","steps":[{"name":"a","worker_class":"gpu","max_attempts":5,"retry_base_ms":10,"retry_max_ms":20,"timeout_ms":100,"max_concurrency":2,"on_failure":"skip","resource_hints":{"gpu":1}}]}`,
		`{"name":"w","steps":[{"name":"a","depends_on":["c"]},{"name":"b","depends_on":["a"]},{"name":"c","depends_on":["b"]}]}`,
		`{"name":"w","steps":[{"name":"a","depends_on":["x"]}]}`,
		`{"name":"w","steps":[{"name":"a"},{"name":"a"}]}`,
		`{"name":"w","steps":[{"name":"a","timeout_ms":-5}]}`,
		`{"name":"w","steps":[{"name":"a","max_attempts":0}]}`,
		`{"name":"w","steps":[{"name":"a","max_attempts":1e400}]}`,
		`{"name":"w","steps":[{"name":"a","depends_on":["a","a"]}]}`,
		`{"name":"w","steps":[{"name":"a","depends_on":[1]}]}`,
		`{"name":"w","steps":[{"name":"a","depends_on":"a"}]}`,
		`{"name":"w","steps":[null]}`,
		`{"name":"W","steps":[{"name":"a"}]}`,
		`{"name":"w","steps":{}}`,
		`{"name":null,"steps":[]}`,
		`{"name":"w","steps":[{"name":"a","condition":{"input":{"size":"big"}}},{"name":"b","depends_on":["a"],"condition":{"a":{"ok":true}}}]}`,
		`{"name":"w","steps":[{"name":"a","condition":[1]}]}`,
		`{"name":"w","steps":[{"name":"a"},{"name":"b","depends_on":["a"],"condition":{"z":1}}]}`,
		`{"name":"w","steps":[{"name":"a"},{"name":"b","depends_on":["a"],"map":"a.items","max_items":5}]}`,
		`{"name":"w","steps":[{"name":"a","map":"input.xs"},{"name":"b","depends_on":["a"],"map":"a"}]}`,
		`{"name":"w","steps":[{"name":"a","map":"input"}]}`,
		`{"name":"w","steps":[{"name":"a","map":"b.items"},{"name":"b"}]}`,
		`{"name":"w","steps":[{"name":"a","map":".x"}]}`,
		`{"name":"w","steps":[{"name":"a","max_items":3}]}`,
		`{"name":"w","steps":[{"name":"a","cache_ttl_ms":1000,"cache_key":["input.k"]},{"name":"b","depends_on":["a"],"cache_ttl_ms":5,"cache_key":["a.x","input"]}]}`,
		`{"name":"w","steps":[{"name":"a","cache_key":["input.k"]}]}`,
		`{"name":"w","steps":[{"name":"a","cache_ttl_ms":0}]}`,
		`{"name":"w","steps":[{"name":"a","cache_ttl_ms":10,"cache_key":[]}]}`,
		`[]`, `null`, `"w"`, `{`, `{"name":"w","steps":[{"name":"a\u0000"}]}`,
	} {
		f.Add([]byte(seed))
	}
	d := setupFuzz(f)
	f.Fuzz(func(t *testing.T, doc []byte) {
		d.inTx(t, func(tx pgx.Tx) {
			before := scalar[int](t, tx, "SELECT (SELECT count(*) FROM qflow.workflows) + (SELECT count(*) FROM qflow.steps) + (SELECT count(*) FROM qflow.step_deps)")
			row, rollback := statement(tx, "SELECT qflow.register_workflow($1::text::jsonb)", string(doc))
			var version int
			if err := row.Scan(&version); err != nil {
				clearRefusal(t, err)
				if err := rollback(); err != nil {
					t.Fatal(err)
				}
				if after := scalar[int](t, tx, "SELECT (SELECT count(*) FROM qflow.workflows) + (SELECT count(*) FROM qflow.steps) + (SELECT count(*) FROM qflow.step_deps)"); after != before {
					t.Fatalf("a refused definition wrote %d rows", after-before)
				}
				return
			}
			// Accepted: the stored version is the document's DAG, in a topological order.
			var def struct {
				Name  string `json:"name"`
				Steps []struct {
					Name      string   `json:"name"`
					DependsOn []string `json:"depends_on"`
				} `json:"steps"`
			}
			if err := json.Unmarshal(doc, &def); err != nil {
				t.Fatalf("accepted a definition Go cannot read: %v", err)
			}
			if n := scalar[int](t, tx, "SELECT count(*) FROM qflow.steps WHERE workflow = $1 AND version = $2", def.Name, version); n != len(def.Steps) {
				t.Fatalf("%d steps stored, %d defined", n, len(def.Steps))
			}
			if bad := scalar[int](t, tx, `SELECT count(*) FROM qflow.step_deps d
			                               JOIN qflow.steps s ON s.workflow = d.workflow AND s.version = d.version AND s.name = d.step
			                               JOIN qflow.steps p ON p.workflow = d.workflow AND p.version = d.version AND p.name = d.depends_on
			                              WHERE d.workflow = $1 AND d.version = $2 AND p.position >= s.position`, def.Name, version); bad > 0 {
				t.Fatalf("%d edges against the stored order", bad)
			}
			if bad := scalar[int](t, tx, `SELECT count(*) FROM qflow.steps s
			                              WHERE s.workflow = $1 AND s.version = $2
			                                AND (s.dep_count <> (SELECT count(*) FROM qflow.step_deps d WHERE d.workflow = s.workflow AND d.version = s.version AND d.step = s.name)
			                                     OR s.is_leaf = EXISTS (SELECT 1 FROM qflow.step_deps d WHERE d.workflow = s.workflow AND d.version = s.version AND d.depends_on = s.name))`,
				def.Name, version); bad > 0 {
				t.Fatalf("%d steps with a wrong dependency count or leaf flag", bad)
			}
			if bad := scalar[int](t, tx, `SELECT count(*) FROM qflow.steps s
			                              WHERE s.workflow = $1 AND s.version = $2
			                                AND EXISTS (SELECT 1 FROM unnest(coalesce(s.map_over[1:1], '{}') || coalesce(ARRAY(SELECT split_part(k, '.', 1) FROM unnest(s.cache_key) k), '{}')) src
			                                             WHERE src <> 'input' AND NOT EXISTS (SELECT 1 FROM qflow.step_deps d
			                                                                                   WHERE d.workflow = s.workflow AND d.version = s.version
			                                                                                     AND d.step = s.name AND d.depends_on = src))`,
				def.Name, version); bad > 0 {
				t.Fatalf("%d steps map or cache on something that is neither the input nor a dependency", bad)
			}
			// And a run of it starts.
			if _, err := tx.Exec(d.ctx, "INSERT INTO qflow.runs (workflow) VALUES ($1)", def.Name); err != nil {
				t.Fatalf("a run of an accepted definition: %v", err)
			}
		})
	})
}

func FuzzRunInput(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"seed": 3, "sleep_ms": {"b": 10}}`, `{"fail": {"a": 2}, "fatal": ["c"]}`, `[]`, `null`, `42`, `"x"`,
		`{"a": "\u0000"}`, `{"a": 1e400}`, `{"a": {"b": {"c": [1, 2, {"d": null}]}}}`, `{`, ``, "\xff",
		`{"blob": "` + strings.Repeat("x", 300) + `"}`, `{"k": "\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	d := setupFuzz(f)
	if _, err := d.conn.Exec(d.ctx, `SELECT qflow.register_workflow('{"name": "chain", "steps": [{"name": "a"}, {"name": "b", "depends_on": ["a"]}]}')`); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		d.inTx(t, func(tx pgx.Tx) {
			// A small limit, so that the fuzzer meets it.
			if _, err := tx.Exec(d.ctx, "UPDATE qflow.settings SET value = 256 WHERE key = 'max_input_bytes'"); err != nil {
				t.Fatal(err)
			}
			row, rollback := statement(tx, "INSERT INTO qflow.runs (workflow, input) VALUES ('chain', $1::text::jsonb) RETURNING id", string(input))
			var id int64
			if err := row.Scan(&id); err != nil {
				clearRefusal(t, err)
				if err := rollback(); err != nil {
					t.Fatal(err)
				}
				if n := scalar[int](t, tx, "SELECT (SELECT count(*) FROM qflow.runs) + (SELECT count(*) FROM qflow.step_runs) + (SELECT count(*) FROM river.river_job)"); n != 0 {
					t.Fatalf("a refused input wrote %d rows", n)
				}
				return
			}
			if !json.Valid(input) {
				t.Fatalf("accepted input that is not JSON: %q", input)
			}
			if ok := scalar[bool](t, tx, `SELECT r.status = 'running' AND jsonb_typeof(r.input) = 'object' AND r.input = $2::text::jsonb
			                                    AND octet_length(r.input::text) <= 256
			                                    AND (SELECT count(*) FROM qflow.step_runs WHERE run_id = r.id) = 2
			                                    AND (SELECT status FROM qflow.step_runs WHERE run_id = r.id AND step = 'a') = 'queued'
			                                    AND (SELECT count(*) FROM river.river_job) = 1
			                               FROM qflow.runs r WHERE r.id = $1`, id, string(input)); !ok {
				t.Fatalf("run %d of input %q did not start as it should", id, input)
			}
		})
	})
}
