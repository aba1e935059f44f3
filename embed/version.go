package embed

import ort "github.com/yalue/onnxruntime_go"

// RuntimeVersion returns the version of the loaded ONNX Runtime library; Init must have succeeded.
func RuntimeVersion() string { return ort.GetVersion() }
