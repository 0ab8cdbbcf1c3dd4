package kernels

import (
	"fmt"
	"strings"
)

// Tensor is an opaque handle to a row-major float32 matrix that lives in a
// Backend's memory. Only its shape is visible to the host; the values move
// only through Backend.Upload and Backend.Download, so a device backend can
// keep them resident between operations.
type Tensor interface {
	// Rows is the number of rows (for activations: samples in the batch).
	Rows() int
	// Cols is the number of columns (for activations: units of the layer).
	Cols() int
}

// Activation is an elementwise (or, for Softmax, row-wise) nonlinearity
// applied after a layer's bias.
type Activation uint8

// The activations a layer can use. The zero value is Identity so that an
// unset activation is linear rather than a surprise nonlinearity.
const (
	// Identity passes its input through: f(z) = z.
	Identity Activation = iota
	// ReLU is max(0, z); its derivative is taken as 0 at z = 0.
	ReLU
	// Sigmoid is 1 / (1 + exp(-z)).
	Sigmoid
	// Softmax normalizes each row to a probability distribution.
	Softmax
)

var activationNames = [...]string{
	Identity: "identity",
	ReLU:     "relu",
	Sigmoid:  "sigmoid",
	Softmax:  "softmax",
}

// String returns the lowercase name used in configs and serialized models.
func (a Activation) String() string {
	if int(a) < len(activationNames) {
		return activationNames[a]
	}
	return fmt.Sprintf("activation(%d)", uint8(a))
}

func (a Activation) valid() bool { return int(a) < len(activationNames) }

// ParseActivation maps a name ("identity", "relu", "sigmoid", "softmax";
// case-insensitive, "linear" is accepted for identity) to an Activation.
func ParseActivation(s string) (Activation, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	if name == "linear" {
		return Identity, nil
	}
	for i, n := range activationNames {
		if n == name {
			return Activation(i), nil
		}
	}
	return 0, fmt.Errorf("unknown activation %q (want identity, relu, sigmoid or softmax)", s)
}

// MarshalText lets activations appear by name in JSON configs.
func (a Activation) MarshalText() ([]byte, error) {
	if !a.valid() {
		return nil, fmt.Errorf("marshaling %s: not a known activation", a)
	}
	return []byte(a.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (a *Activation) UnmarshalText(b []byte) error {
	v, err := ParseActivation(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// AdamParams are the scalar hyperparameters of one Adam step. Bias correction
// uses the step number passed alongside, so the same params serve every step.
type AdamParams struct {
	// LR is the learning rate.
	LR float32 `json:"lr"`
	// Beta1 is the decay of the first-moment (mean) estimate.
	Beta1 float32 `json:"beta1"`
	// Beta2 is the decay of the second-moment (uncentered variance) estimate.
	Beta2 float32 `json:"beta2"`
	// Eps keeps the denominator away from zero.
	Eps float32 `json:"eps"`
}

// Backend is the math MLP training needs, over tensors the backend owns.
//
// Every operation takes and returns Tensors allocated by the same backend and
// never needs the host to see their values, so a device backend can queue
// the whole training step on the device and synchronize only in Download.
// Host-side arguments are scalars and, for GatherRows, the batch's row
// indices, which are not data.
//
// A Backend need not be safe for concurrent use: Train and Model.PredictOn
// call it from one goroutine, which is what a CUDA context (bound to one OS
// thread) requires. Outputs must not alias inputs unless the method says so.
type Backend interface {
	// Name identifies the backend in logs and benchmark output ("cpu", "cuda").
	Name() string

	// Alloc returns a zero-filled rows×cols tensor.
	Alloc(rows, cols int) (Tensor, error)
	// Free releases a tensor's memory; using it afterwards is an error.
	Free(t Tensor) error
	// Upload copies len(src) == Rows*Cols row-major values from the host into dst.
	Upload(dst Tensor, src []float32) error
	// Download copies src into the host slice dst (len Rows*Cols, row-major).
	// It is the only operation that must wait for queued work.
	Download(dst []float32, src Tensor) error

	// GatherRows sets dst row i to src row rows[i]; it builds a minibatch
	// from a dataset that stays resident on the backend.
	GatherRows(dst, src Tensor, rows []int) error

	// MatMul computes C = alpha·op(A)·op(B) + beta·C, where op(X) is X or
	// its transpose as transA/transB say (the BLAS sgemm contract, row-major).
	// When beta is 0, C is overwritten and its old contents (even NaN) are ignored.
	MatMul(transA, transB bool, alpha float32, a, b Tensor, beta float32, c Tensor) error

	// BiasActivate computes y = act(x + bias), with bias a 1×Cols row added
	// to every row of x. y may be x.
	BiasActivate(act Activation, x, bias, y Tensor) error
	// ActivationBackward computes dz = f'(z) ⊙ dy from the forward output
	// y = f(z) (for Softmax, the row-wise Jacobian product), and, when dbias
	// is not nil, dbias = column sums of dz, the bias gradient. dz may be dy.
	ActivationBackward(act Activation, y, dy, dz, dbias Tensor) error

	// Dropout computes y = x ⊙ mask / (1 - rate), with the mask drawn by
	// DropoutKeep(seed, step, i, rate) for flat row-major index i. The same
	// (seed, step) on the upstream gradient is the backward pass. y may be x.
	Dropout(x, y Tensor, rate float32, seed, step uint64) error

	// MSELoss adds to loss (1×1) the sum over rows of the per-row mean squared
	// error between pred and target, and writes to grad the gradient of the
	// batch-mean loss with respect to pred, 2(pred-target)/(Rows·Cols).
	// Either grad or loss may be nil to skip it.
	MSELoss(pred, target, grad, loss Tensor) error
	// SoftmaxCrossEntropyLoss adds to loss (1×1) the sum over rows of
	// -Σ target·log softmax(logits), and writes to grad the gradient of the
	// batch-mean loss with respect to the logits, (softmax·Σtarget − target)/Rows.
	// It takes logits, not probabilities, to stay finite for confident rows.
	// Either grad or loss may be nil to skip it.
	SoftmaxCrossEntropyLoss(logits, target, grad, loss Tensor) error

	// AdamStep applies one Adam update with bias correction for step t ≥ 1 to
	// the weights w, given their gradient g and moment state m and v:
	// m = β1·m + (1-β1)·g, v = β2·v + (1-β2)·g², w -= lr·m̂/(√v̂ + ε)
	// with m̂ = m/(1-β1^t) and v̂ = v/(1-β2^t).
	AdamStep(w, g, m, v Tensor, p AdamParams, t int) error
}

// sameShape reports a shape mismatch between two tensors with the op and
// operand names, since "shape mismatch" alone is useless in a deep stack.
func sameShape(op, na string, a Tensor, nb string, b Tensor) error {
	if a.Rows() != b.Rows() || a.Cols() != b.Cols() {
		return fmt.Errorf("%s: %s is %dx%d but %s is %dx%d", op, na, a.Rows(), a.Cols(), nb, b.Rows(), b.Cols())
	}
	return nil
}
