package ml

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/quantumflow/qflow/pipelines"
)

// DecodeInput decodes a run's input object into v. An unknown field or a wrong type is a
// mistake that no retry fixes, so the error is permanent.
func DecodeInput(in pipelines.Input, v any) error {
	if len(in.Run) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(in.Run))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return pipelines.Permanent(fmt.Errorf("run input: %w", err))
	}
	return nil
}

// DecodeDep decodes the output of the dependency step into v.
func DecodeDep(in pipelines.Input, step string, v any) error {
	raw, ok := in.Deps[step]
	if !ok || len(raw) == 0 || string(raw) == "null" {
		return pipelines.Permanent(fmt.Errorf("step %s has no output of %s", in.Step, step))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return pipelines.Permanent(fmt.Errorf("decoding the output of %s: %w", step, err))
	}
	return nil
}
