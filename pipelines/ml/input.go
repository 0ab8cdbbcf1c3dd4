package ml

import (
	"bytes"
	"encoding/json"
	"errors"
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

// Check records a broken rule of a run input: when ok is false, the message format makes
// with args says what is wrong.
type Check func(ok bool, format string, args ...any)

// DecodeParams decodes the run input over defaults, then checks it: rules calls check once
// per rule. Every broken rule is reported at once, in one permanent error, so that one failed
// run names all that is wrong with its input and no retry is spent on it.
func DecodeParams[P any](in pipelines.Input, defaults P, rules func(p P, check Check)) (P, error) {
	p := defaults
	if err := DecodeInput(in, &p); err != nil {
		return p, err
	}
	var errs []error
	rules(p, func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return p, pipelines.Permanent(fmt.Errorf("run input: %w", err))
	}
	return p, nil
}
