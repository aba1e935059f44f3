package pil

import (
	"bytes"
	"encoding/binary"
)

// Orientation returns the EXIF orientation (1 to 8) of an encoded image, or 1 when it has none:
// JPEG's APP1 "Exif" segment, PNG's eXIf chunk, WebP's EXIF chunk and TIFF's own first IFD, the
// places Pillow's Image.getexif reads it from.
func Orientation(data []byte) int {
	f := sniff(data)
	if f == nil {
		return 1
	}
	return orientation(f.name, data)
}

func orientation(format string, data []byte) int {
	var tiff []byte
	switch format {
	case "JPEG":
		tiff = jpegExif(data)
	case "PNG":
		tiff = pngChunk(data, "eXIf")
	case "WebP":
		tiff = webpChunk(data, "EXIF")
		tiff, _ = bytes.CutPrefix(tiff, []byte("Exif\x00\x00"))
	case "TIFF":
		tiff = data
	}
	return tiffOrientation(tiff)
}

// jpegExif returns the TIFF structure of the first APP1 Exif segment before the image data.
func jpegExif(d []byte) []byte {
	for i := 2; i+4 <= len(d) && d[i] == 0xFF; {
		marker := d[i+1]
		if marker == 0xDA || marker == 0xD9 { // start of scan, end of image
			return nil
		}
		n := int(binary.BigEndian.Uint16(d[i+2:]))
		if n < 2 || i+2+n > len(d) {
			return nil
		}
		seg := d[i+4 : i+2+n]
		if marker == 0xE1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			return seg[6:]
		}
		i += 2 + n
	}
	return nil
}

func pngChunk(d []byte, kind string) []byte {
	for i := 8; i+8 <= len(d); {
		n := int(binary.BigEndian.Uint32(d[i:]))
		if n < 0 || n > len(d)-i-12 {
			return nil
		}
		if string(d[i+4:i+8]) == kind {
			return d[i+8 : i+8+n]
		}
		if string(d[i+4:i+8]) == "IDAT" {
			return nil // eXIf after the image data is not read by Image.open either
		}
		i += 12 + n
	}
	return nil
}

func webpChunk(d []byte, kind string) []byte {
	for i := 12; i+8 <= len(d); {
		n := int(binary.LittleEndian.Uint32(d[i+4:]))
		if n < 0 || n > len(d)-i-8 {
			return nil
		}
		if string(d[i:i+4]) == kind {
			return d[i+8 : i+8+n]
		}
		i += 8 + n + n&1
	}
	return nil
}

// tiffOrientation reads tag 0x0112 (a SHORT) of the first IFD of a TIFF structure.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 1
	}
	off := int64(bo.Uint32(t[4:]))
	if off+2 > int64(len(t)) {
		return 1
	}
	n := int64(bo.Uint16(t[off:]))
	for e := off + 2; e+12 <= int64(len(t)) && e < off+2+12*n; e += 12 {
		if bo.Uint16(t[e:]) == 0x0112 && bo.Uint16(t[e+2:]) == 3 {
			if v := int(bo.Uint16(t[e+8:])); v >= 1 && v <= 8 {
				return v
			}
			return 1
		}
	}
	return 1
}

// transpose applies an EXIF orientation as PIL.ImageOps.exif_transpose does: 2 flips left to
// right, 3 turns 180°, 4 flips top to bottom, 5 transposes, 6 turns 90° clockwise, 7 transverses,
// 8 turns 90° anticlockwise; anything else leaves the image as it is.
func (m *RGB) transpose(orientation int) *RGB {
	W, H := m.W, m.H
	// src gives the source pixel of output pixel (x, y).
	var src func(x, y int) (int, int)
	swap := false
	switch orientation {
	case 2:
		src = func(x, y int) (int, int) { return W - 1 - x, y }
	case 3:
		src = func(x, y int) (int, int) { return W - 1 - x, H - 1 - y }
	case 4:
		src = func(x, y int) (int, int) { return x, H - 1 - y }
	case 5:
		src, swap = func(x, y int) (int, int) { return y, x }, true
	case 6:
		src, swap = func(x, y int) (int, int) { return y, H - 1 - x }, true
	case 7:
		src, swap = func(x, y int) (int, int) { return W - 1 - y, H - 1 - x }, true
	case 8:
		src, swap = func(x, y int) (int, int) { return W - 1 - y, x }, true
	default:
		return m
	}
	out := &RGB{W: W, H: H, Pix: make([]byte, len(m.Pix))}
	if swap {
		out.W, out.H = H, W
	}
	i := 0
	for y := 0; y < out.H; y++ {
		for x := 0; x < out.W; x++ {
			sx, sy := src(x, y)
			copy(out.Pix[i:i+3], m.Pix[3*(sy*W+sx):])
			i += 3
		}
	}
	return out
}
