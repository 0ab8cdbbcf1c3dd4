package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// How a step's marks read, here and in `qflow dag` and `qflow status`: what a map step maps
// over, how a cached step is cached, and a condition.

// MapText says what a map step maps over, "map over split.items"; "" for another step.
func MapText(over []string) string {
	if len(over) == 0 {
		return ""
	}
	return "map over " + strings.Join(over, ".")
}

// CacheText says how a cached step is cached, "cached 1h on input.key"; "" for another step.
func CacheText(ttlMS *int64, key []string) string {
	if ttlMS == nil {
		return ""
	}
	t := "cached " + ttlText(*ttlMS)
	if len(key) > 0 {
		t += " on " + strings.Join(key, ", ")
	}
	return t
}

// ttlText is a cache lifetime as a person writes it: 1h, 1h30m, 45s, 500ms.
func ttlText(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	if d%time.Minute != 0 {
		return d.String()
	}
	h, m := int64(d/time.Hour), int64(d%time.Hour/time.Minute)
	switch {
	case h == 0:
		return fmt.Sprintf("%dm", m)
	case m == 0:
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dh%dm", h, m)
}

// ConditionText reads a step's condition, a JSON object the step's input document must
// contain, as paths and values: {"input": {"size": "big"}} is `input.size = "big"`. "" for none.
func ConditionText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return string(raw)
	}
	var parts []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		if m, ok := v.(map[string]any); ok && (len(m) > 0 || path == "") {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(p, m[k])
			}
			return
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
		// Containment: an array holds the elements given, in any order, among others.
		op := " = "
		if _, ok := v.([]any); ok {
			op = " contains "
		}
		parts = append(parts, path+op+strings.TrimSpace(buf.String()))
	}
	walk("", v)
	return strings.Join(parts, " and ")
}
