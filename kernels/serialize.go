package kernels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// The serialized model, version 1, all integers and floats little-endian:
//
//	magic    "QFML"
//	version  uint16 (1)
//	reserved uint16 (0)
//	inputs   uint32
//	loss     uint8
//	layers   uint32
//	per layer: units uint32, activation uint8, dropout float32
//	mean, std: inputs float32 each
//	per layer: weights in×units float32 (row-major), bias units float32
//	crc32    uint32, IEEE, of every byte before it
//
// Binary rather than JSON because a 1024×1024 layer would triple in size as
// base64 text; the checksum turns a damaged bytea into an error instead of a
// model that silently predicts garbage.
const (
	modelMagic   = "QFML"
	modelVersion = 1
	headerSize   = 4 + 2 + 2 + 4 + 1 + 4
	layerHdrSize = 4 + 1 + 4
	// maxLayers and maxUnits reject absurd headers before any allocation.
	maxLayers = 1 << 12
	maxUnits  = 1 << 24
)

// ErrInvalidModel is wrapped by every error UnmarshalBinary returns for bytes
// that are not a model this version can read.
var ErrInvalidModel = errors.New("invalid model data")

func invalidModel(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidModel, fmt.Sprintf(format, args...))
}

var modelFormat = binaryFormat{what: "model", magic: modelMagic, version: modelVersion, headerSize: headerSize, invalid: invalidModel}

// binaryFormat is what the model and checkpoint formats share: magic, version
// and a reserved uint16 up front, a length that follows from the header, and
// a CRC-32 of everything before it at the end.
type binaryFormat struct {
	what, magic string
	version     uint16
	headerSize  int
	invalid     func(format string, args ...any) error
}

// open checks the magic, the header's length and the version, and returns a
// decoder past them.
func (f binaryFormat) open(data []byte) (decoder, error) {
	if len(data) < len(f.magic) || string(data[:len(f.magic)]) != f.magic {
		return decoder{}, f.invalid("not a qflow %s (bad magic)", f.what)
	}
	if len(data) < f.headerSize {
		return decoder{}, f.invalid("truncated: %d bytes, header alone needs %d", len(data), f.headerSize)
	}
	d := decoder{buf: data, off: len(f.magic)}
	if v := d.uint16(); v != f.version {
		return decoder{}, f.invalid("unsupported version %d (this build reads %d)", v, f.version)
	}
	d.uint16() // reserved
	return d, nil
}

// seal checks that data is the want bytes its header describes and that its
// checksum holds, before anything is allocated for its contents.
func (f binaryFormat) seal(data []byte, want int64) error {
	if int64(len(data)) < want {
		return f.invalid("truncated: %d bytes, the header describes %d", len(data), want)
	}
	if int64(len(data)) > want {
		return f.invalid("%d trailing bytes after the %s", int64(len(data))-want, f.what)
	}
	body := data[:len(data)-4]
	if got, stored := crc32.ChecksumIEEE(body), binary.LittleEndian.Uint32(data[len(body):]); got != stored {
		return f.invalid("checksum mismatch (stored %08x, computed %08x): the bytes were damaged", stored, got)
	}
	return nil
}

// MarshalBinary encodes the model's architecture, activations, dropout
// rates, normalization and weights in the versioned format above. Adam state
// is not included: a serialized model is for prediction, not for resuming.
func (m *Model) MarshalBinary() ([]byte, error) {
	if m == nil || len(m.layers) == 0 {
		return nil, errors.New("marshaling model: empty model")
	}
	size := headerSize + len(m.layers)*layerHdrSize + 8*m.inputs + 4
	for _, l := range m.layers {
		size += 4 * (len(l.w) + len(l.b))
	}
	buf := make([]byte, 0, size)
	le := binary.LittleEndian
	buf = append(buf, modelMagic...)
	buf = le.AppendUint16(buf, modelVersion)
	buf = le.AppendUint16(buf, 0)
	buf = le.AppendUint32(buf, uint32(m.inputs))
	buf = append(buf, byte(m.loss))
	buf = le.AppendUint32(buf, uint32(len(m.layers)))
	for _, l := range m.layers {
		buf = le.AppendUint32(buf, uint32(l.Units))
		buf = append(buf, byte(l.Activation))
		buf = le.AppendUint32(buf, math.Float32bits(l.Dropout))
	}
	buf = appendFloats(buf, m.mean)
	buf = appendFloats(buf, m.std)
	for _, l := range m.layers {
		buf = appendFloats(buf, l.w)
		buf = appendFloats(buf, l.b)
	}
	return le.AppendUint32(buf, crc32.ChecksumIEEE(buf)), nil
}

func appendFloats(buf []byte, v []float32) []byte {
	for _, f := range v {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(f))
	}
	return buf
}

// LoadModel decodes bytes written by MarshalBinary.
func LoadModel(data []byte) (*Model, error) {
	m := &Model{}
	if err := m.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalBinary decodes bytes written by MarshalBinary into m. Wrong magic,
// an unknown version, truncation, trailing bytes, a checksum mismatch or an
// impossible architecture all fail with an error wrapping ErrInvalidModel,
// and m is left unchanged.
func (m *Model) UnmarshalBinary(data []byte) error {
	d, err := modelFormat.open(data)
	if err != nil {
		return err
	}
	out := &Model{inputs: int(d.uint32()), loss: Loss(d.uint8())}
	nLayers := int(d.uint32())
	if out.inputs <= 0 || out.inputs > maxUnits {
		return invalidModel("inputs %d out of range", out.inputs)
	}
	if !out.loss.valid() {
		return invalidModel("unknown loss %d", uint8(out.loss))
	}
	if nLayers <= 0 || nLayers > maxLayers {
		return invalidModel("layer count %d out of range", nLayers)
	}
	if d.remaining() < nLayers*layerHdrSize {
		return invalidModel("truncated in the layer table")
	}
	// The exact length follows from the header; check it before allocating
	// so a corrupt count cannot ask for gigabytes.
	want := int64(headerSize) + int64(nLayers)*layerHdrSize + 8*int64(out.inputs) + 4
	cfgs := make([]LayerConfig, nLayers)
	in := out.inputs
	for i := range cfgs {
		c := LayerConfig{Units: int(d.uint32()), Activation: Activation(d.uint8()), Dropout: math.Float32frombits(d.uint32())}
		if c.Units <= 0 || c.Units > maxUnits {
			return invalidModel("layer %d: units %d out of range", i, c.Units)
		}
		if !c.Activation.valid() {
			return invalidModel("layer %d: unknown activation %d", i, uint8(c.Activation))
		}
		if !(c.Dropout >= 0 && c.Dropout < 1) {
			return invalidModel("layer %d: dropout %v outside [0, 1)", i, c.Dropout)
		}
		want += 4 * (int64(in)*int64(c.Units) + int64(c.Units))
		cfgs[i] = c
		in = c.Units
	}
	if out.loss == SoftmaxCrossEntropy && cfgs[nLayers-1].Activation != Softmax {
		return invalidModel("loss %s with a %s output layer", out.loss, cfgs[nLayers-1].Activation)
	}
	if err := modelFormat.seal(data, want); err != nil {
		return err
	}
	out.mean = d.floats(out.inputs)
	out.std = d.floats(out.inputs)
	for j, s := range out.std {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return invalidModel("feature %d: std %v, want finite > 0", j, s)
		}
	}
	in = out.inputs
	for _, c := range cfgs {
		l := dense{LayerConfig: c, in: in}
		l.w = d.floats(in * c.Units)
		l.b = d.floats(c.Units)
		out.layers = append(out.layers, l)
		in = c.Units
	}
	*m = *out
	return nil
}

// decoder reads little-endian fields; callers check lengths before reading,
// so it does no bounds checking of its own beyond Go's.
type decoder struct {
	buf []byte
	off int
}

func (d *decoder) remaining() int { return len(d.buf) - d.off }

func (d *decoder) uint8() uint8 {
	v := d.buf[d.off]
	d.off++
	return v
}

func (d *decoder) uint16() uint16 {
	v := binary.LittleEndian.Uint16(d.buf[d.off:])
	d.off += 2
	return v
}

func (d *decoder) uint32() uint32 {
	v := binary.LittleEndian.Uint32(d.buf[d.off:])
	d.off += 4
	return v
}

func (d *decoder) uint64() uint64 {
	v := binary.LittleEndian.Uint64(d.buf[d.off:])
	d.off += 8
	return v
}

func (d *decoder) floats(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(d.uint32())
	}
	return out
}
