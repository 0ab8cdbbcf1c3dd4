// Package k8s holds example Kubernetes manifests for running QuantumFlow's workers: CPU
// workers, GPU workers, and KEDA scaling both from qflow.autoscaling. It has no code; its test
// checks the manifests offline (they parse, kinds and required fields are right, each
// scaler's query agrees with its Deployment and returns the right number for a known backlog).
package k8s
