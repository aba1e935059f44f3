package embed

import (
	"os"
	"slices"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

// The parser agrees with ONNX Runtime's own description of the bundled model.
func TestGraphSignatureMatchesORT(t *testing.T) {
	testModelLoaded(t) // initialises ONNX Runtime
	b, err := os.ReadFile(testModel)
	if err != nil {
		t.Fatal(err)
	}
	ins, outs, err := graphSignature(b)
	if err != nil {
		t.Fatal(err)
	}
	oins, oouts, err := ort.GetInputOutputInfo(testModel)
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range []struct {
		mine   []tensorInfo
		theirs []ort.InputOutputInfo
	}{{ins, oins}, {outs, oouts}} {
		if len(pair.mine) != len(pair.theirs) {
			t.Fatalf("%d tensors, ORT says %d", len(pair.mine), len(pair.theirs))
		}
		for i, m := range pair.mine {
			o := pair.theirs[i]
			if m.Name != o.Name || m.ElemType != int64(o.DataType) || !slices.Equal(m.Shape, []int64(o.Dimensions)) {
				t.Errorf("parsed %+v, ORT says %s %v %v", m, o.Name, o.DataType, o.Dimensions)
			}
		}
	}
	if ins[0].Name != "inputs:0" || !slices.Equal(ins[0].Shape, []int64{-1, 224, 224, 3}) || outs[0].Name != "feature_vector" {
		t.Errorf("inputs %+v outputs %+v", ins, outs)
	}
}

func TestGraphSignatureRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":     {},
		"text":      []byte("this is not a model"),
		"truncated": {0x3a, 0x10, 0x01},
	} {
		if _, _, err := graphSignature(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzGraphSignature(f *testing.F) {
	if b, err := os.ReadFile(testModel); err == nil {
		// The model's opening and a tail: the weights in between are only skipped.
		f.Add(b[:4096])
		f.Add(b[len(b)-4096:])
	}
	// The property: any input is parsed or refused, without a panic or an endless loop.
	f.Fuzz(func(t *testing.T, b []byte) {
		graphSignature(b)
	})
}
