package onnx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/vigil-video/vigil/pkg/cputime"
	"github.com/vigil-video/vigil/pkg/onnx/graph"
)

const (
	// batchSymbol names the batch dimension NewSession gives models.
	batchSymbol = "batch"
	// maxSampleSize bounds the floats in one sample of an input or output,
	// so that sizes computed from untrusted shapes cannot overflow.
	maxSampleSize = 1 << 30
)

// SessionOptions configures a Session. The zero value gives the defaults.
type SessionOptions struct {
	// IntraOpThreads is the number of threads onnxruntime uses inside one
	// Run call (0 means 1). One thread per session keeps several sessions
	// from oversubscribing the CPU; parallelism comes from running
	// sessions concurrently.
	IntraOpThreads int
	// AllowSpinning lets onnxruntime's worker threads busy-wait for work
	// (default false). Spinning lowers latency with a dedicated CPU but
	// burns cores that concurrent sessions need.
	AllowSpinning bool
	// MaxBatch is the largest batch passed to onnxruntime at once (0 means
	// 16); Run splits larger requests.
	MaxBatch int
	// Device selects the execution provider (default the CPU); see
	// ParseDevice. With DeviceAuto a session falls back to the CPU when the
	// CUDA provider cannot be used; with DeviceCUDA NewSession then fails
	// with ErrCUDAUnavailable. Session.Placement tells where it runs.
	Device Device
	// Log receives one line per session saying where it runs (a warning
	// when a requested CUDA device is not used); nil logs nothing.
	Log *slog.Logger
}

// withDefaults validates o and fills in its defaults.
func (o SessionOptions) withDefaults() (SessionOptions, error) {
	if o.IntraOpThreads < 0 || o.MaxBatch < 0 {
		return o, fmt.Errorf("IntraOpThreads (%d) and MaxBatch (%d) must not be negative", o.IntraOpThreads, o.MaxBatch)
	}
	if err := o.Device.validate(); err != nil {
		return o, fmt.Errorf("device: %w", err)
	}
	if o.IntraOpThreads == 0 {
		o.IntraOpThreads = 1
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 16
	}
	return o, nil
}

// Session runs one model: one float32 input whose first dimension is the
// batch, and one or more float32 outputs whose first dimension is the
// batch. Its methods are safe for concurrent use; Run calls proceed in
// parallel.
type Session struct {
	name      string
	rt        *Runtime
	maxBatch  int
	input     string
	outputs   []string
	inShape   []int64   // per sample
	outShapes [][]int64 // per sample
	inSize    int
	outSizes  []int

	placement Placement
	lat       latencyHist // inference latency per onnxruntime invocation (Latency)

	mu   sync.RWMutex // Run holds it shared, close exclusively
	sess *ort.DynamicAdvancedSession
}

// NewSession prepares model (the bytes of an .onnx file) for Run. name
// identifies the session in errors. The model is rewritten with
// graph.PruneInitializerInputs (so onnxruntime may fold its weights) and
// graph.MakeBatchDynamic. It must have exactly one input,
// all its inputs and outputs must be float32 tensors whose first dimension
// is the batch (fixed 1, made dynamic by graph.MakeBatchDynamic, or already
// symbolic) and whose other dimensions are fixed, and it must not use
// external data: such a model would make onnxruntime open files it names.
// Malformed bytes give an error wrapping graph.ErrMalformed or
// graph.ErrNoGraph. opts.Device picks the execution provider: a session
// asked for CUDA that cannot use it runs on the CPU (DeviceAuto, with a
// warning on opts.Log) or fails with an error wrapping ErrCUDAUnavailable
// (DeviceCUDA); either way a model that does not load on the CPU either
// gives the CPU's error.
func (r *Runtime) NewSession(name string, model []byte, opts SessionOptions) (*Session, error) {
	s, err := r.newSession(name, model, opts)
	if err != nil {
		return nil, fmt.Errorf("onnx: session %s: %w", name, err)
	}
	return s, nil
}

func (r *Runtime) newSession(name string, model []byte, opts SessionOptions) (*Session, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	orig, err := graph.Inspect(model)
	if err != nil {
		return nil, err
	}
	if orig.HasExternalData {
		return nil, errors.New("model uses external data, which is not supported")
	}
	if len(orig.Inputs) != 1 {
		return nil, fmt.Errorf("model has %d inputs, want exactly 1", len(orig.Inputs))
	}
	pruned, err := graph.PruneInitializerInputs(model)
	if err != nil {
		return nil, err
	}
	dyn, err := graph.MakeBatchDynamic(pruned, batchSymbol)
	if err != nil {
		return nil, err
	}
	info, err := graph.Inspect(dyn)
	if err != nil {
		return nil, err
	}
	if len(info.Outputs) == 0 {
		return nil, errors.New("model has no outputs")
	}
	s := &Session{name: name, rt: r, maxBatch: opts.MaxBatch, input: info.Inputs[0].Name}
	if s.inShape, err = sampleShape("input", info.Inputs[0]); err != nil {
		return nil, err
	}
	s.inSize = numel(s.inShape)
	for _, out := range info.Outputs {
		shape, err := sampleShape("output", out)
		if err != nil {
			return nil, err
		}
		s.outputs = append(s.outputs, out.Name)
		s.outShapes = append(s.outShapes, shape)
		s.outSizes = append(s.outSizes, numel(shape))
	}

	s.placement = Placement{Requested: opts.Device, Provider: ProviderCPU}
	if opts.Device.WantsCUDA() {
		sess, cudaErr := r.createSession(dyn, s, opts, true)
		if cudaErr == nil {
			s.placement.Provider, s.placement.DeviceID = ProviderCUDA, opts.Device.ID
			return r.register(s, sess, opts.Log)
		}
		if errors.Is(cudaErr, ErrClosed) {
			return nil, cudaErr
		}
		// Tell a CUDA problem from a model problem: the model must load on
		// the CPU for the CUDA attempt's error to be CUDA's.
		sess, err := r.createSession(dyn, s, opts, false)
		if err != nil {
			return nil, err
		}
		if opts.Device.Kind == DeviceCUDA {
			sess.Destroy()
			return nil, fmt.Errorf("device %s: %w: %w", opts.Device, ErrCUDAUnavailable, cudaErr)
		}
		s.placement.Fallback = fmt.Errorf("%w: %w", ErrCUDAUnavailable, cudaErr)
		return r.register(s, sess, opts.Log)
	}
	sess, err := r.createSession(dyn, s, opts, false)
	if err != nil {
		return nil, err
	}
	return r.register(s, sess, opts.Log)
}

// createSession creates the onnxruntime session for model (already
// rewritten) with s's input and outputs, on the CUDA provider when cuda is
// set (with the CPU provider behind it for nodes CUDA lacks), else on the
// CPU provider alone.
func (r *Runtime) createSession(model []byte, s *Session, opts SessionOptions, cuda bool) (*ort.DynamicAdvancedSession, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("create session options: %w", err)
	}
	defer so.Destroy()
	spin := "0"
	if opts.AllowSpinning {
		spin = "1"
	}
	for _, err := range []error{
		so.SetIntraOpNumThreads(opts.IntraOpThreads),
		so.SetInterOpNumThreads(1),
		so.AddSessionConfigEntry("session.intra_op.allow_spinning", spin),
		so.AddSessionConfigEntry("session.inter_op.allow_spinning", spin),
	} {
		if err != nil {
			return nil, fmt.Errorf("set session options: %w", err)
		}
	}
	if cuda {
		if err := addCUDA(so, opts.Device); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{s.input}, s.outputs, so)
	if err != nil {
		return nil, fmt.Errorf("onnxruntime: %w", err)
	}
	return sess, nil
}

// register makes sess s's onnxruntime session, records s in r so that
// closing r closes it, and logs its placement. It fails with ErrClosed,
// destroying sess, if r was closed meanwhile.
func (r *Runtime) register(s *Session, sess *ort.DynamicAdvancedSession, log *slog.Logger) (*Session, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		sess.Destroy()
		return nil, ErrClosed
	}
	s.sess = sess
	r.sessions[s] = struct{}{}
	r.mu.Unlock()
	logPlacement(log, s.name, s.placement)
	return s, nil
}

// sampleShape checks that v is a float32 tensor with a batch first
// dimension and fixed positive other dimensions, and returns those.
func sampleShape(kind string, v graph.ValueInfo) ([]int64, error) {
	if v.ElemType != graph.ElemFloat {
		return nil, fmt.Errorf("%s %q has element type %d, want float32 (%d)", kind, v.Name, v.ElemType, graph.ElemFloat)
	}
	if !v.HasShape || len(v.Dims) == 0 {
		return nil, fmt.Errorf("%s %q has no batch dimension (shape %s)", kind, v.Name, dimsString(v))
	}
	if v.Dims[0].Fixed() {
		return nil, fmt.Errorf("%s %q has fixed batch dimension %d; only a batch of 1 can be made dynamic", kind, v.Name, v.Dims[0].Value)
	}
	shape := make([]int64, 0, len(v.Dims)-1)
	size := int64(1)
	for _, d := range v.Dims[1:] {
		if !d.Fixed() || d.Value == 0 {
			return nil, fmt.Errorf("%s %q has shape %s; all dimensions but the batch must be fixed and positive", kind, v.Name, dimsString(v))
		}
		if d.Value > maxSampleSize/size {
			return nil, fmt.Errorf("%s %q has shape %s; a sample of more than %d floats is not supported", kind, v.Name, dimsString(v), maxSampleSize)
		}
		size *= d.Value
		shape = append(shape, d.Value)
	}
	return shape, nil
}

func dimsString(v graph.ValueInfo) string {
	if !v.HasShape {
		return "unknown"
	}
	s := "["
	for i, d := range v.Dims {
		if i > 0 {
			s += ","
		}
		s += d.String()
	}
	return s + "]"
}

func numel(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

// Name returns the name given to NewSession.
func (s *Session) Name() string { return s.name }

// Placement returns where the session runs: the provider (ProviderCUDA or
// ProviderCPU), the CUDA device, what was requested and, for a DeviceAuto
// session on the CPU, why CUDA was not used. It never changes after
// NewSession.
func (s *Session) Placement() Placement { return s.placement }

// InputName returns the name of the model's input.
func (s *Session) InputName() string { return s.input }

// InputShape returns the shape of one input sample (the input's shape
// without the batch dimension).
func (s *Session) InputShape() []int64 { return slices.Clone(s.inShape) }

// Outputs returns the names of the model's outputs, in the order Run
// returns them.
func (s *Session) Outputs() []string { return slices.Clone(s.outputs) }

// OutputShape returns the shape of one sample of output i (without the
// batch dimension). It panics if i is out of range, like a slice index.
func (s *Session) OutputShape(i int) []int64 { return slices.Clone(s.outShapes[i]) }

// Run runs the model on n samples. input holds the samples one after the
// other, so len(input) must be n*prod(InputShape()). Run returns one slice
// per output, in Outputs() order, each holding n samples of
// prod(OutputShape(i)) floats. Requests of more than MaxBatch samples are
// run in chunks of at most MaxBatch. Cancelling ctx stops the run between
// chunks or, through onnxruntime's terminate flag, inside one, and Run
// returns an error wrapping ctx.Err(). input is read, never modified nor
// retained. n == 0 returns empty outputs.
func (s *Session) Run(ctx context.Context, n int, input []float32) ([][]float32, error) {
	if n < 0 || len(input)%s.inSize != 0 || len(input)/s.inSize != n {
		return nil, fmt.Errorf("onnx: session %s: input has %d floats, want %d samples of %v = %s floats",
			s.name, len(input), n, s.inShape, mulString(n, s.inSize))
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.sess == nil {
		return nil, fmt.Errorf("onnx: session %s: %w", s.name, ErrClosed)
	}
	outs := make([][]float32, len(s.outputs))
	for i, size := range s.outSizes {
		outs[i] = make([]float32, n*size)
	}
	for off := 0; off < n; off += s.maxBatch {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("onnx: session %s: %w", s.name, err)
		}
		b := min(s.maxBatch, n-off)
		start := time.Now()
		cpu, err := s.runChunkTimed(ctx, off, b, input, outs)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				err = ctxErr
			}
			return nil, fmt.Errorf("onnx: session %s: samples %d-%d: %w", s.name, off, off+b-1, err)
		}
		s.lat.observe(time.Since(start), cpu)
	}
	return outs, nil
}

// runChunkTimed is runChunk on a held OS thread, returning that thread's CPU time during it (0
// without a thread CPU clock).
func (s *Session) runChunkTimed(ctx context.Context, off, b int, input []float32, outs [][]float32) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0, err0 := cputime.Thread()
	err := s.runChunk(ctx, off, b, input, outs)
	c1, err1 := cputime.Thread()
	if err0 != nil || err1 != nil {
		return 0, err
	}
	return c1 - c0, err
}

// mulString renders n*size, or "?" if n is negative.
func mulString(n, size int) string {
	if n < 0 {
		return "?"
	}
	return strconv.Itoa(n * size)
}

// runChunk runs samples [off, off+b) of input, writing the results into
// the same samples of outs. The tensors wrap the Go slices, so onnxruntime
// reads and writes them in place; every tensor is destroyed on return.
func (s *Session) runChunk(ctx context.Context, off, b int, input []float32, outs [][]float32) error {
	var values []ort.Value
	defer func() {
		for _, v := range values {
			v.Destroy()
		}
	}()
	in, err := ort.NewTensor(batchShape(b, s.inShape), input[off*s.inSize:(off+b)*s.inSize])
	if err != nil {
		return fmt.Errorf("input tensor: %w", err)
	}
	values = append(values, in)
	outValues := make([]ort.Value, len(outs))
	for i, out := range outs {
		size := s.outSizes[i]
		t, err := ort.NewTensor(batchShape(b, s.outShapes[i]), out[off*size:(off+b)*size])
		if err != nil {
			return fmt.Errorf("output tensor %q: %w", s.outputs[i], err)
		}
		values = append(values, t)
		outValues[i] = t
	}

	ro, err := ort.NewRunOptions()
	if err != nil {
		return fmt.Errorf("run options: %w", err)
	}
	defer ro.Destroy()
	terminated := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		ro.Terminate()
		close(terminated)
	})
	err = s.sess.RunWithOptions([]ort.Value{in}, outValues, ro)
	if !stop() {
		<-terminated // Terminate is running or ran; let it finish before ro.Destroy
	}
	return err
}

// batchShape prepends the batch dimension b to a per-sample shape.
func batchShape(b int, sample []int64) ort.Shape {
	return append(ort.Shape{int64(b)}, sample...)
}

// Close releases the session after waiting for running Run calls; later
// Run calls fail with an error wrapping ErrClosed. Closing twice is
// harmless. Closing the session's Runtime closes the session too.
func (s *Session) Close() error {
	s.rt.mu.Lock()
	delete(s.rt.sessions, s)
	s.rt.mu.Unlock()
	return s.close()
}

// close destroys the onnxruntime session once no Run is in progress.
func (s *Session) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		return nil
	}
	err := s.sess.Destroy()
	s.sess = nil
	if err != nil {
		return fmt.Errorf("onnx: session %s: destroy: %w", s.name, err)
	}
	return nil
}
