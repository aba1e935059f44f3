package embed

import (
	"errors"
	"fmt"
)

// tensorInfo is a graph input or output as the ONNX file declares it.
type tensorInfo struct {
	Name     string
	ElemType int64   // onnx.TensorProto.DataType: 1 is FLOAT
	Shape    []int64 // -1 for a symbolic or unknown dimension
}

const onnxFloat = 1

// graphSignature reads the declared inputs and outputs of an ONNX model from its protobuf bytes,
// without building a session (ONNX Runtime's own way to ask creates a throwaway one, which
// costs as much as loading the model). It walks only the fields on the path
// ModelProto.graph(7) → GraphProto.input(11)/output(12) → ValueInfoProto.name(1)/type(2) →
// TypeProto.tensor_type(1) → elem_type(1), shape(2) → dim(1) → dim_value(1); everything else,
// the weights included, is skipped by length.
func graphSignature(model []byte) (inputs, outputs []tensorInfo, err error) {
	graph, err := field(model, 7)
	if err != nil {
		return nil, nil, fmt.Errorf("not an ONNX model: %w", err)
	}
	if graph == nil {
		return nil, nil, errors.New("not an ONNX model: no graph")
	}
	err = walk(graph, func(num int, wire int, v []byte, _ uint64) error {
		if wire != 2 || (num != 11 && num != 12) {
			return nil
		}
		ti, err := valueInfo(v)
		if err != nil {
			return err
		}
		if num == 11 {
			inputs = append(inputs, ti)
		} else {
			outputs = append(outputs, ti)
		}
		return nil
	})
	return inputs, outputs, err
}

func valueInfo(b []byte) (tensorInfo, error) {
	var ti tensorInfo
	err := walk(b, func(num, wire int, v []byte, _ uint64) error {
		switch {
		case num == 1 && wire == 2:
			ti.Name = string(v)
		case num == 2 && wire == 2:
			tensor, err := field(v, 1)
			if err != nil || tensor == nil {
				return err
			}
			return walk(tensor, func(num, wire int, v []byte, x uint64) error {
				switch {
				case num == 1 && wire == 0:
					ti.ElemType = int64(x)
				case num == 2 && wire == 2:
					ti.Shape = []int64{}
					return walk(v, func(num, wire int, dim []byte, _ uint64) error {
						if num != 1 || wire != 2 {
							return nil
						}
						d := int64(-1)
						err := walk(dim, func(num, wire int, _ []byte, x uint64) error {
							if num == 1 && wire == 0 {
								d = int64(x)
							}
							return nil
						})
						ti.Shape = append(ti.Shape, d)
						return err
					})
				}
				return nil
			})
		}
		return nil
	})
	return ti, err
}

// field returns the last length-delimited field num of a message, or nil.
func field(b []byte, num int) ([]byte, error) {
	var out []byte
	err := walk(b, func(n, wire int, v []byte, _ uint64) error {
		if n == num && wire == 2 {
			out = v
		}
		return nil
	})
	return out, err
}

var errProto = errors.New("malformed protobuf")

// walk calls f for each field of a protobuf message: its number, wire type, and its bytes
// (length-delimited) or value (varint, fixed).
func walk(b []byte, f func(num, wire int, v []byte, x uint64) error) error {
	for len(b) > 0 {
		key, n := uvarint(b)
		if n <= 0 {
			return errProto
		}
		b = b[n:]
		num, wire := int(key>>3), int(key&7)
		var v []byte
		var x uint64
		switch wire {
		case 0:
			if x, n = uvarint(b); n <= 0 {
				return errProto
			}
			b = b[n:]
		case 1, 5:
			size := 8
			if wire == 5 {
				size = 4
			}
			if len(b) < size {
				return errProto
			}
			b = b[size:]
		case 2:
			l, n := uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return errProto
			}
			v, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return errProto
		}
		if err := f(num, wire, v, x); err != nil {
			return err
		}
	}
	return nil
}

func uvarint(b []byte) (uint64, int) {
	var x uint64
	for i := 0; i < len(b) && i < 10; i++ {
		x |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return x, i + 1
		}
	}
	return 0, -1
}
