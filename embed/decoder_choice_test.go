package embed

import (
	"bytes"
	"image"
	"image/draw"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"simsearch/pil"
)

// TestGoJPEGDecoderIsNotEnough measures what Go's own image/jpeg would give instead of
// libjpeg-turbo: it is why package pil decodes JPEG through cgo. It fails the day Go's decoder
// is within the fidelity tolerance on every reference JPEG, when the cgo dependency could go.
func TestGoJPEGDecoderIsNotEnough(t *testing.T) {
	m := testModelLoaded(t)
	ids, ref := readReference(t)
	worst, worstID := 0.0, ""
	for i, id := range ids {
		if !strings.HasSuffix(id, ".jpg") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(testImages, id))
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			continue // CMYK and other files Go cannot decode at all
		}
		b := img.Bounds()
		rgba := image.NewRGBA(b)
		draw.Draw(rgba, b, img, b.Min, draw.Src)
		rgb := &pil.RGB{W: b.Dx(), H: b.Dy(), Pix: make([]byte, 0, 3*b.Dx()*b.Dy())}
		for p := 0; p < len(rgba.Pix); p += 4 {
			rgb.Pix = append(rgb.Pix, rgba.Pix[p:p+3]...)
		}
		v, err := m.Embed(rgb)
		if err != nil {
			t.Fatal(err)
		}
		if d := distance(v, ref[i*1280:(i+1)*1280]); d > worst {
			worst, worstID = d, id
		}
	}
	t.Logf("Go's image/jpeg: worst L2 distance to the Python pipeline %.3g (%s); libjpeg-turbo: 0", worst, worstID)
	if worst <= fidelityTolerance {
		t.Errorf("Go's image/jpeg is within %g on every reference JPEG: package pil could drop cgo for JPEG", fidelityTolerance)
	}
}
