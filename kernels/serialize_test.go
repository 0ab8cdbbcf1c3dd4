package kernels

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

type serializeBundle struct {
	model *Model
	bytes []byte
	x     []float32
}

// setupSerialize trains a small classifier with every activation, dropout
// and a non-trivial normalization, and marshals it.
func setupSerialize(t *testing.T) *serializeBundle {
	t.Helper()
	r := newTestRand(9)
	x, labels := blobs(r, 30)
	for i := range x {
		x[i] = x[i]*7 + 100 // so mean and std are not 0 and 1
	}
	y, err := OneHot(labels, 3)
	require.NoError(t, err)
	cfg := Config{
		Inputs: 2,
		Layers: []LayerConfig{
			{Units: 8, Activation: ReLU, Dropout: 0.25},
			{Units: 6, Activation: Sigmoid},
			{Units: 5, Activation: Identity},
			{Units: 3, Activation: Softmax},
		},
		Loss:      SoftmaxCrossEntropy,
		Epochs:    5,
		BatchSize: 8,
		Seed:      10,
	}
	model, _, err := Train(context.Background(), cfg, x, y)
	require.NoError(t, err)
	b, err := model.MarshalBinary()
	require.NoError(t, err)
	return &serializeBundle{model: model, bytes: b, x: x}
}

func TestModelRoundTripGivesIdenticalPredictions(t *testing.T) {
	t.Parallel()
	b := setupSerialize(t)

	loaded, err := LoadModel(b.bytes)
	require.NoError(t, err)
	require.Equal(t, b.model.Inputs(), loaded.Inputs())
	require.Equal(t, b.model.Outputs(), loaded.Outputs())
	require.Equal(t, b.model.Loss(), loaded.Loss())
	require.Equal(t, b.model.Layers(), loaded.Layers())

	want, err := b.model.Predict(b.x)
	require.NoError(t, err)
	got, err := loaded.Predict(b.x)
	require.NoError(t, err)
	for i := range want {
		require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "prediction %d", i)
	}

	// Marshaling the loaded model reproduces the bytes exactly.
	again, err := loaded.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, b.bytes, again)
}

func TestLoadModelRejectsDamagedBytes(t *testing.T) {
	t.Parallel()
	b := setupSerialize(t)
	mutate := func(f func([]byte) []byte) []byte { return mutated(b.bytes, f) }
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "bad magic"},
		{"json", []byte(`{"layers":[]}`), "bad magic"},
		{"header only", b.bytes[:10], "truncated: 10 bytes, header alone needs 17"},
		{"truncated layer table", b.bytes[:headerSize+3], "truncated in the layer table"},
		{"truncated weights", b.bytes[:len(b.bytes)-9], "truncated"},
		{"missing checksum", b.bytes[:len(b.bytes)-4], "truncated"},
		{"trailing bytes", append(append([]byte(nil), b.bytes...), 0), "1 trailing bytes"},
		{"flipped weight bit", mutate(func(d []byte) []byte { d[len(d)-20] ^= 0x10; return d }), "checksum mismatch"},
		{"future version", mutate(func(d []byte) []byte { d[4] = 2; return d }), "unsupported version 2"},
		{"unknown loss", mutate(func(d []byte) []byte { d[12] = 9; return resigned(d) }), "unknown loss 9"},
		{"unknown activation", mutate(func(d []byte) []byte { d[headerSize+4] = 9; return resigned(d) }), "layer 0: unknown activation 9"},
		{"huge layer count", mutate(func(d []byte) []byte { binary.LittleEndian.PutUint32(d[13:], 1<<30); return d }), "layer count 1073741824 out of range"},
		{"huge units", mutate(func(d []byte) []byte { binary.LittleEndian.PutUint32(d[headerSize:], 1<<23); return d }), "the header describes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := &Model{}
			err := m.UnmarshalBinary(tc.data)
			require.ErrorIs(t, err, ErrInvalidModel)
			require.ErrorContains(t, err, tc.want)
			require.Zero(t, m.inputs, "a failed unmarshal leaves the model untouched")
		})
	}
}

func TestLoadModelRejectsEveryTruncation(t *testing.T) {
	t.Parallel()
	b := setupSerialize(t)
	for n := 0; n < len(b.bytes); n++ {
		_, err := LoadModel(b.bytes[:n])
		require.ErrorIs(t, err, ErrInvalidModel, "prefix of %d bytes", n)
	}
}

// modelV1 is a model as format version 1 wrote it (2 inputs → 2 ReLU, dropout 0.5 → 1 sigmoid).
// Registries hold such bytes, so every later build must load them, predict what they
// predicted and write them back unchanged, whatever else (checkpoints) it learns to write.
const modelV1 = "51464d4c0100000002000000000200000002000000010000003f0100000002000000000000803fabaaaa3f" +
	"ec05513fe0a49f3f8a54b8bf9b4b443f615f8abf2a854ebf040050ba9e938b3b8290b2bf9156943f80c1a73bc9387cc6"

func TestModelsOfFormatVersionOneStillLoad(t *testing.T) {
	t.Parallel()
	raw, err := hex.DecodeString(modelV1)
	require.NoError(t, err)
	m, err := LoadModel(raw)
	require.NoError(t, err)
	pred, err := m.Predict([]float32{0.5, -1, 3, 2})
	require.NoError(t, err)
	require.Equal(t, []float32{0.05543264, 0.8438266}, pred)
	again, err := m.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, raw, again)
}
