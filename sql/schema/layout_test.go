package schema_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/sql/schema"
)

// The layout is what lets a reader find a rule: each object defined in one file, no file
// patching another's object, tables apart from code, River's table written in one place.

var (
	created = regexp.MustCompile(`(?i)\bcreate\s+(?:unique\s+)?(table|function|procedure|view|trigger|index)\s+(?:if\s+not\s+exists\s+)?([a-z_][a-z0-9_.]*)`)
	patch   = regexp.MustCompile(`(?i)\b(create\s+or\s+replace|alter\s+(function|procedure|routine|table|view|trigger)|drop\s+(function|procedure|routine|table|view|trigger|index))\b`)
	riverW  = regexp.MustCompile(`(?i)\b(insert\s+into|update|delete\s+from)\s+river\.`)
	notify  = regexp.MustCompile(`(?i)\bpg_notify\s*\(\s*'river\.`)
	literal = regexp.MustCompile(`'(?:[^']|'')*'`)
)

func TestEveryObjectIsDefinedInOneFileAndNeverPatched(t *testing.T) {
	t.Parallel()
	state, err := schema.State()
	require.NoError(t, err)
	code, err := schema.Code()
	require.NoError(t, err)
	where := map[string]string{}
	for _, f := range append(state, code...) {
		sql := withoutComments(f.SQL, false)
		require.Empty(t, patch.FindAllString(sql, -1), "%s redefines or drops an object: edit the object's own file instead", f.Name)
		for _, m := range created.FindAllStringSubmatch(sql, -1) {
			kind, name := strings.ToLower(m[1]), strings.ToLower(m[2])
			if kind == "function" || kind == "procedure" {
				kind = "routine"
			}
			key := kind + " " + name
			require.NotContains(t, where, key, "%s is defined in %s and %s", key, where[key], f.Name)
			where[key] = f.Name
			isCode := kind == "routine" || kind == "view" || kind == "trigger"
			require.Equal(t, isCode, f.Name >= schema.FirstCode, "%s in %s: tables and indexes go below %s, code from it", key, f.Name, schema.FirstCode)
		}
	}
	require.Contains(t, where, "routine qflow.finish_steps")
	require.Contains(t, where, "table qflow.step_runs")
}

func TestOnlyTheRiverAdapterWritesRiversTableAndChannel(t *testing.T) {
	t.Parallel()
	adapter := map[string]bool{"0300_river_insert_jobs.sql": true, "0310_river_finalize_jobs.sql": true}
	code, err := schema.Code()
	require.NoError(t, err)
	var writers []string
	for _, f := range code {
		sql := withoutComments(f.SQL, false)
		if riverW.MatchString(sql) || notify.MatchString(withoutComments(f.SQL, true)) {
			writers = append(writers, f.Name)
			require.True(t, adapter[f.Name], "%s writes River's table or notifies its channel: go through qflow.river_insert_jobs / river_finalize_jobs", f.Name)
		}
	}
	require.ElementsMatch(t, []string{"0300_river_insert_jobs.sql", "0310_river_finalize_jobs.sql"}, writers)
}

// withoutComments drops -- comments and, unless told to keep them, string literals, so that
// prose about a rule, or a statement a routine builds for EXECUTE, does not count as the rule.
func withoutComments(sql string, keepLiterals bool) string {
	var b strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		if !keepLiterals {
			line = literal.ReplaceAllString(line, "''")
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}
