// Command qflow is QuantumFlow's CLI and CPU worker. See `qflow help`.
package main

import (
	"os"

	"github.com/quantumflow/qflow/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
}
