// Package kernels is the training math of QuantumFlow's ML pipelines: a
// Backend interface with the operations a multilayer perceptron needs, the
// pure-Go CPU backend that is the reference and the default, an MLP trainer
// (Train) and the serializable Model it produces.
//
// # Operations
//
// A Backend provides, over float32 row-major matrices:
//
//   - Alloc, Free, Upload, Download: tensor memory and the only host↔backend copies.
//   - GatherRows: builds a minibatch from a dataset resident on the backend.
//   - MatMul: C = alpha·op(A)·op(B) + beta·C with transpose flags (sgemm);
//     the forward pass is X·W, the weight gradient Xᵀ·dZ, the input gradient dZ·Wᵀ.
//   - BiasActivate: y = act(x + bias) for Identity, ReLU, Sigmoid and
//     row-wise Softmax.
//   - ActivationBackward: dz = f'(z) ⊙ dy from the forward output, plus the
//     bias gradient as column sums of dz.
//   - Dropout: inverted dropout (kept values scaled by 1/(1-rate)) with a
//     counter-based mask; applied to the upstream gradient with the same
//     (seed, step) it is the backward pass.
//   - MSELoss and SoftmaxCrossEntropyLoss: the loss summed into a 1×1
//     accumulator and the gradient of the batch-mean loss.
//   - AdamStep: one bias-corrected Adam update of a weight tensor and its
//     moment tensors.
//
// # Why the interface has this shape
//
// The training step runs on a GPU worker through a CUDA backend (built with
// -tags cuda; see the design notes). Host↔device copies and synchronization
// dominate small networks on a GPU, so:
//
//   - Tensors are opaque handles that expose only their shape; every
//     operation reads and writes backend memory, so a whole epoch runs with
//     the data, weights, gradients and Adam state on the device. The host
//     passes scalars and batch row indices, never values.
//   - Losses accumulate into a device tensor; Train downloads it once per
//     epoch, and the weights once at the end.
//   - Dropout masks are a pure function of (seed, step, element index)
//     (DropoutKeep documents the hash), so no mask is stored between the
//     forward and backward pass, and a GPU thread computes the same bits as
//     the CPU; backends agree exactly on which units are dropped.
//   - Softmax cross-entropy takes logits rather than probabilities so that
//     confident predictions neither overflow nor take log(0).
//   - Operations return errors because a device backend has real failure
//     modes (out of memory, a failed launch); shapes are checked by each backend.
//   - Backends need not be safe for concurrent use: a CUDA context is bound
//     to one OS thread, and Train drives its backend from one goroutine.
//
// # Determinism
//
// On the CPU backend, the same Config (including Seed) and data give
// bit-identical weights and loss curves, whatever CPU.Workers or GOMAXPROCS
// is: weight init, shuffling and dropout all derive from Seed through our own
// splitmix64 streams, and MatMul splits work by output rows only, so every
// output element is summed in the same order. Bit equality holds within one
// GOARCH: the Go compiler fuses multiply-adds on arm64 but not on amd64.
// Other backends are expected to match the CPU within a tolerance, not bit
// for bit, except for dropout masks, which are integer arithmetic and exact.
//
// # Models
//
// A Model carries the architecture, weights and the per-feature
// normalization fitted on its training data, so Predict takes raw features.
// MarshalBinary writes a versioned, checksummed binary format; LoadModel
// reads it back to a model with identical predictions and rejects damaged
// or truncated bytes with an error wrapping ErrInvalidModel.
//
// # Checkpoints
//
// A training can stop between epochs and go on later, elsewhere, on another
// backend: Config.Checkpoints makes Train hand a Checkpoint to a Save function
// every N epochs, every interval, after the last epoch, and, when its context
// ends, for the last epoch it completed; Config.Resume continues from one. A
// Checkpoint is the weights and normalization, Adam's moments and step
// count, the epoch and its losses, and the random streams' state (the
// shuffler and the batch order; dropout masks follow from the seed and the
// step count). Because every random draw is derived rather than consumed
// from a global source, a resumed training on the CPU backend ends with
// exactly the weights of an uninterrupted one. Checkpoint.MarshalBinary
// writes its own versioned, checksummed format, which embeds the model
// format, and a fingerprint of the config and data makes Train refuse to
// resume another training's checkpoint (ErrCheckpointMismatch).
package kernels
