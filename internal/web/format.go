package web

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/quantumflow/qflow/pipelines/ml"
)

// funcs are the template helpers: how numbers and times read on a page.
var funcs = template.FuncMap{
	"ms":       func(ms int64) string { return fmtMS(float64(ms)) },
	"msf":      fmtMS,
	"when":     when,
	"clock":    clock,
	"clockPtr": clockPtr,
	"ago":      ago,
	"pct":      func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
	"perMin": func(f float64) string {
		if f >= 10 {
			return fmt.Sprintf("%.0f", f)
		}
		return fmt.Sprintf("%.3g", f)
	},
	"str":   func(p *string) string { return deref(p) },
	"label": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
	"trim":  short,
	"clip":  func(p *string, n int) string { return short(deref(p), n) },
	"list":  func(s ...string) []string { return s },
	"est":   func(e ml.Estimate, verb string) string { return e.Format(verb) },
	"estp": func(e *ml.Estimate, verb string) string {
		if e == nil {
			return "—"
		}
		return e.Format(verb)
	},
	"add": func(a, b float64) float64 { return a + b },
	"sub": func(a, b float64) float64 { return a - b },
	"div": func(a, b float64) float64 { return a / b },
	"int32": func(p *int32) string {
		if p == nil {
			return "—"
		}
		return fmt.Sprint(*p)
	},
}

// fmtMS reads a duration in milliseconds the way a person says it: 85 ms, 1.24 s, 3m 05s.
func fmtMS(ms float64) string {
	switch {
	case ms < 0 || math.IsNaN(ms):
		return "—"
	case ms < 1000:
		return fmt.Sprintf("%.0f ms", ms)
	case ms < 10_000:
		return fmt.Sprintf("%.2f s", ms/1000)
	case ms < 60_000:
		return fmt.Sprintf("%.1f s", ms/1000)
	case ms < 3_600_000:
		s := int64(ms / 1000)
		return fmt.Sprintf("%dm %02ds", s/60, s%60)
	default:
		m := int64(ms / 60_000)
		return fmt.Sprintf("%dh %02dm", m/60, m%60)
	}
}

// when is a date and time to the second, in UTC (workers and the database may sit in any
// zone; the page says which it uses).
func when(t pgtype.Timestamptz) string {
	if !t.Valid {
		return "—"
	}
	return t.Time.UTC().Format("2006-01-02 15:04:05")
}

// clock is a time of day to the millisecond, for steps and attempts of one run.
func clock(t pgtype.Timestamptz) string {
	if !t.Valid {
		return "—"
	}
	return t.Time.UTC().Format("15:04:05.000")
}

func clockPtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return clock(pgtype.Timestamptz{Time: *t, Valid: true})
}

// ago is how long before now a time was, roughly: 4 s ago, 12 min ago, 3 h ago, 2 d ago.
func ago(t pgtype.Timestamptz, now time.Time) string {
	if !t.Valid {
		return ""
	}
	d := now.Sub(t.Time)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d d ago", int(d.Hours()/24))
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// short cuts s to n runes, on one line, for table cells; the cell's title holds the rest.
func short(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
