package detect

import "context"

// Model is a batched image model: the seam between this package's pre/post-processing and the
// onnxruntime session that *onnx.Session implements. Run takes n samples laid out contiguously
// (n * prod(InputShape()) floats) and returns one slice per output, n samples each, in
// Outputs() order. It must be safe for concurrent use.
type Model interface {
	InputShape() []int64
	Outputs() []string
	OutputShape(i int) []int64
	Run(ctx context.Context, n int, input []float32) ([][]float32, error)
}

// volume is the product of dims (1 for none).
func volume(dims []int64) int {
	v := 1
	for _, d := range dims {
		v *= int(d)
	}
	return v
}

// OutputIndex returns the index of the output called name, or -1.
func OutputIndex(m Model, name string) int {
	for i, o := range m.Outputs() {
		if o == name {
			return i
		}
	}
	return -1
}
