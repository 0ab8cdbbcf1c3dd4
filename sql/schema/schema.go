// Package schema holds the current definition of QuantumFlow's SQL, one object per file,
// numbered in dependency order: what a reader opens to learn a rule, and what `qflow migrate`
// applies (package migrations says how).
//
// Files numbered below 0300 are state: schemas, tables with their constraints and indexes, and
// the rows a fresh database starts with. Files from 0300 on are code: functions, procedures,
// triggers, views and grants, which migrate re-applies, all together, whenever they change.
package schema

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
)

// Files holds the schema's SQL files, embedded.
//
//go:embed *.sql
var Files embed.FS

// FirstCode is the number of the first code file: files below it are state.
const FirstCode = "0300"

// File is one file of the schema.
type File struct {
	// Name is the file's name, e.g. "0550_finish_steps.sql".
	Name string
	// SQL is its content.
	SQL string
	// SHA256 is the hex checksum of its content.
	SHA256 string
}

// State returns the state files (tables and what a fresh database starts with), in order.
func State() ([]File, error) { return files(func(name string) bool { return name < FirstCode }) }

// Code returns the code files (functions, procedures, triggers, views, grants), in order.
func Code() ([]File, error) { return files(func(name string) bool { return name >= FirstCode }) }

func files(keep func(string) bool) ([]File, error) {
	names, err := fs.Glob(Files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("listing schema files: %w", err)
	}
	sort.Strings(names)
	var out []File
	for _, name := range names {
		if !keep(name) {
			continue
		}
		b, err := fs.ReadFile(Files, name)
		if err != nil {
			return nil, fmt.Errorf("reading schema file %s: %w", name, err)
		}
		sum := sha256.Sum256(b)
		out = append(out, File{Name: name, SQL: string(b), SHA256: hex.EncodeToString(sum[:])})
	}
	return out, nil
}
