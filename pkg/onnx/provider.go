package onnx

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// Execution provider names, as onnxruntime spells them.
const (
	// ProviderCPU is onnxruntime's default CPU execution provider.
	ProviderCPU = "CPUExecutionProvider"
	// ProviderCUDA is onnxruntime's CUDA execution provider. It needs an
	// onnxruntime library built with the CUDA provider bridge, the provider
	// libraries (libonnxruntime_providers_shared.so and
	// libonnxruntime_providers_cuda.so) beside it, and the CUDA and cuDNN
	// libraries the provider was built for; see docs/gpu.md.
	ProviderCUDA = "CUDAExecutionProvider"
)

// ErrCUDAUnavailable is wrapped by the error of NewSession when a session
// was asked to run on CUDA strictly (DeviceCUDA) and the CUDA execution
// provider could not be used, while the model itself loads on the CPU: the
// provider library, a CUDA or cuDNN library or the GPU is missing, or the
// CUDA provider refused the options or the model.
var ErrCUDAUnavailable = errors.New("CUDA execution provider unavailable")

// DeviceKind says which execution provider a session should use.
type DeviceKind uint8

// Device kinds. The zero value is DeviceCPU.
const (
	// DeviceCPU runs on onnxruntime's CPU provider.
	DeviceCPU DeviceKind = iota
	// DeviceCUDA runs on CUDA device Device.ID, strictly: when the CUDA
	// provider cannot be used, NewSession fails with ErrCUDAUnavailable.
	DeviceCUDA
	// DeviceAuto runs on CUDA device Device.ID when the CUDA provider can be
	// used, and otherwise on the CPU, logging a warning; the reason is kept
	// in Placement.Fallback.
	DeviceAuto
)

// ConvAlgoSearch is how cuDNN chooses convolution algorithms (the CUDA
// provider's cudnn_conv_algo_search option).
type ConvAlgoSearch string

// Convolution algorithm searches. The zero value leaves onnxruntime's
// default, which is exhaustive.
const (
	// ConvSearchExhaustive benchmarks every algorithm the first time a
	// convolution sees an input shape (onnxruntime's default). The fastest
	// kernels, but the first run at each new batch size is slow.
	ConvSearchExhaustive ConvAlgoSearch = "exhaustive"
	// ConvSearchHeuristic takes cuDNN's heuristic choice: no benchmarking,
	// so no slow first run per batch size, sometimes slower kernels.
	ConvSearchHeuristic ConvAlgoSearch = "heuristic"
	// ConvSearchDefault takes cuDNN's default algorithm.
	ConvSearchDefault ConvAlgoSearch = "default"
)

// CUDAOptions are the CUDA execution provider's options Vigil exposes. The
// zero value gives onnxruntime's defaults.
type CUDAOptions struct {
	// MemLimit caps, in bytes, the CUDA memory arena of each session
	// (gpu_mem_limit); 0 means no cap. Each session has its own arena, so
	// the analyzer's total is up to one MemLimit per model.
	MemLimit int64
	// ConvAlgoSearch is the cuDNN convolution algorithm search; "" means
	// onnxruntime's default (ConvSearchExhaustive).
	ConvAlgoSearch ConvAlgoSearch
}

// Device selects where sessions run and, for CUDA, the provider's options.
// The zero value is the CPU. ParseDevice reads the textual form that String
// writes.
type Device struct {
	// Kind is DeviceCPU, DeviceCUDA (strict) or DeviceAuto (CUDA, else CPU).
	Kind DeviceKind
	// ID is the CUDA device ordinal for DeviceCUDA and DeviceAuto; 0 for
	// DeviceCPU.
	ID int
	// CUDA holds the CUDA provider's options; zero for DeviceCPU.
	CUDA CUDAOptions
}

// maxDeviceID bounds the CUDA ordinal ParseDevice accepts.
const maxDeviceID = 1 << 16

// ParseDevice parses a device specification:
//
//	cpu                 the CPU (also "")
//	cuda, cuda:N        CUDA device N (default 0), strictly: sessions fail if CUDA cannot be used
//	auto, auto:N        CUDA device N if the CUDA provider can be used, else the CPU with a warning
//
// followed, for cuda and auto, by comma-separated CUDA options:
//
//	mem-limit=SIZE      CUDA arena cap per session: bytes, or with a KiB, MiB or GiB suffix
//	conv-search=MODE    cuDNN convolution algorithm search: exhaustive, heuristic or default
//
// for example "cuda:1,mem-limit=8GiB,conv-search=heuristic". Errors are one
// line naming the offending part.
func ParseDevice(s string) (Device, error) {
	head, opts, hasOpts := strings.Cut(strings.TrimSpace(s), ",")
	kind, id, hasID := strings.Cut(head, ":")
	var d Device
	switch strings.ToLower(strings.TrimSpace(kind)) {
	case "", "cpu":
		if hasID || hasOpts {
			return Device{}, fmt.Errorf("device %q: cpu takes no device number or options", s)
		}
		return Device{}, nil
	case "cuda":
		d.Kind = DeviceCUDA
	case "auto":
		d.Kind = DeviceAuto
	default:
		return Device{}, fmt.Errorf("device %q: want cpu, cuda[:N] or auto[:N], optionally followed by ,mem-limit=SIZE,conv-search=MODE", s)
	}
	if hasID {
		n, err := strconv.Atoi(strings.TrimSpace(id))
		if err != nil || n < 0 || n > maxDeviceID {
			return Device{}, fmt.Errorf("device %q: device number %q is not an integer from 0 to %d", s, id, maxDeviceID)
		}
		d.ID = n
	}
	if !hasOpts {
		return d, nil
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(opts, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return Device{}, fmt.Errorf("device %q: option %q is not key=value", s, kv)
		}
		if seen[k] {
			return Device{}, fmt.Errorf("device %q: option %s given twice", s, k)
		}
		seen[k] = true
		switch k {
		case "mem-limit":
			n, err := parseSize(v)
			if err != nil {
				return Device{}, fmt.Errorf("device %q: mem-limit: %w", s, err)
			}
			d.CUDA.MemLimit = n
		case "conv-search":
			m := ConvAlgoSearch(strings.ToLower(v))
			switch m {
			case ConvSearchExhaustive, ConvSearchHeuristic, ConvSearchDefault:
				d.CUDA.ConvAlgoSearch = m
			default:
				return Device{}, fmt.Errorf("device %q: conv-search %q: want exhaustive, heuristic or default", s, v)
			}
		default:
			return Device{}, fmt.Errorf("device %q: unknown option %q (known: mem-limit, conv-search)", s, k)
		}
	}
	return d, nil
}

// parseSize parses a byte count: digits, optionally followed by KiB, MiB or
// GiB (case-insensitive); at most 1 TiB.
func parseSize(v string) (int64, error) {
	mult := int64(1)
	lower := strings.ToLower(v)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}} {
		if strings.HasSuffix(lower, u.suffix) {
			lower, mult = strings.TrimSpace(strings.TrimSuffix(lower, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(lower, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size from 1 byte to 1TiB (bytes, or with a KiB, MiB or GiB suffix)", v)
	}
	return n * mult, nil
}

// String returns the specification ParseDevice parses back into d, e.g.
// "cpu", "cuda:0" or "auto:1,mem-limit=8GiB,conv-search=heuristic".
func (d Device) String() string {
	var b strings.Builder
	switch d.Kind {
	case DeviceCPU:
		return "cpu"
	case DeviceCUDA:
		b.WriteString("cuda")
	case DeviceAuto:
		b.WriteString("auto")
	default:
		return fmt.Sprintf("DeviceKind(%d)", d.Kind)
	}
	fmt.Fprintf(&b, ":%d", d.ID)
	if n := d.CUDA.MemLimit; n > 0 {
		switch {
		case n%(1<<30) == 0:
			fmt.Fprintf(&b, ",mem-limit=%dGiB", n>>30)
		case n%(1<<20) == 0:
			fmt.Fprintf(&b, ",mem-limit=%dMiB", n>>20)
		case n%(1<<10) == 0:
			fmt.Fprintf(&b, ",mem-limit=%dKiB", n>>10)
		default:
			fmt.Fprintf(&b, ",mem-limit=%d", n)
		}
	}
	if d.CUDA.ConvAlgoSearch != "" {
		fmt.Fprintf(&b, ",conv-search=%s", d.CUDA.ConvAlgoSearch)
	}
	return b.String()
}

// WantsCUDA reports whether d asks for the CUDA provider (DeviceCUDA or
// DeviceAuto).
func (d Device) WantsCUDA() bool { return d.Kind == DeviceCUDA || d.Kind == DeviceAuto }

// cudaProviderOptions returns the CUDA provider's option map for d.
func (d Device) cudaProviderOptions() map[string]string {
	m := map[string]string{"device_id": strconv.Itoa(d.ID)}
	if d.CUDA.MemLimit > 0 {
		m["gpu_mem_limit"] = strconv.FormatInt(d.CUDA.MemLimit, 10)
	}
	if d.CUDA.ConvAlgoSearch != "" {
		m["cudnn_conv_algo_search"] = strings.ToUpper(string(d.CUDA.ConvAlgoSearch))
	}
	return m
}

// validate checks a Device built by hand rather than by ParseDevice.
func (d Device) validate() error {
	switch d.Kind {
	case DeviceCPU:
		if d.ID != 0 || d.CUDA != (CUDAOptions{}) {
			return errors.New("device cpu takes no device number or CUDA options")
		}
		return nil
	case DeviceCUDA, DeviceAuto:
	default:
		return fmt.Errorf("unknown device kind %d", d.Kind)
	}
	if d.ID < 0 || d.ID > maxDeviceID {
		return fmt.Errorf("CUDA device number %d is not from 0 to %d", d.ID, maxDeviceID)
	}
	if d.CUDA.MemLimit < 0 {
		return fmt.Errorf("CUDA mem-limit %d is negative", d.CUDA.MemLimit)
	}
	switch d.CUDA.ConvAlgoSearch {
	case "", ConvSearchExhaustive, ConvSearchHeuristic, ConvSearchDefault:
	default:
		return fmt.Errorf("CUDA conv-search %q: want exhaustive, heuristic or default", d.CUDA.ConvAlgoSearch)
	}
	return nil
}

// Placement says where a session actually runs. Session.Placement returns
// it; NewSession logs it.
type Placement struct {
	// Requested is the device the session was asked for
	// (SessionOptions.Device).
	Requested Device
	// Provider is the execution provider the session runs on: ProviderCUDA
	// or ProviderCPU. With ProviderCUDA, onnxruntime may still place single
	// nodes the CUDA provider lacks kernels for (and shape computations) on
	// the CPU; every face model's convolutions and matrix products run on
	// the GPU.
	Provider string
	// DeviceID is the CUDA device ordinal when Provider is ProviderCUDA,
	// else 0.
	DeviceID int
	// Fallback is why a DeviceAuto session runs on the CPU: the error the
	// CUDA attempt gave. It is nil otherwise.
	Fallback error
}

// OnCUDA reports whether the session runs on the CUDA provider.
func (p Placement) OnCUDA() bool { return p.Provider == ProviderCUDA }

// String returns "cuda:N" or "cpu", the latter followed by the fallback
// reason when a requested CUDA device could not be used.
func (p Placement) String() string {
	if p.OnCUDA() {
		return fmt.Sprintf("cuda:%d", p.DeviceID)
	}
	if p.Fallback != nil {
		return fmt.Sprintf("cpu (%s requested: %s)", p.Requested, oneLine(p.Fallback))
	}
	return "cpu"
}

// addCUDA adds the CUDA provider for d to so, or returns why it cannot:
// the error of the first failed attempt in this environment, if any, so
// that a machine without CUDA tries (and logs) loading the provider once.
// onnxruntime's own log is silenced meanwhile: the error says it all.
func addCUDA(so *ort.SessionOptions, d Device) error {
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.cudaErr != nil {
		return env.cudaErr
	}
	_ = ort.SetEnvironmentLogLevel(ort.LoggingLevelFatal)
	err := appendCUDA(so, d, env.legacy)
	_ = ort.SetEnvironmentLogLevel(ort.LoggingLevelError)
	env.cudaErr = err
	return err
}

// appendCUDA adds the CUDA provider for d to so, through the V2 CUDA
// options where the library has them and else through the legacy V1 call
// (legacy, nil when unavailable). Its errors say what onnxruntime
// reported: typically that the provider library or one of its CUDA
// dependencies could not be loaded.
func appendCUDA(so *ort.SessionOptions, d Device, legacy *legacyAPI) error {
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		// Builds without the V2 options may still load the provider
		// through the V1 call.
		if legacy == nil {
			return fmt.Errorf("create CUDA provider options: %s", ortMessage(err))
		}
		return legacy.appendCUDAV1(so, d)
	}
	defer co.Destroy()
	// Update is where onnxruntime loads the provider library.
	if err := co.Update(d.cudaProviderOptions()); err != nil {
		return fmt.Errorf("load CUDA provider: %s", ortMessage(err))
	}
	if err := so.AppendExecutionProviderCUDA(co); err != nil {
		return fmt.Errorf("load CUDA provider: %s", ortMessage(err))
	}
	return nil
}

// ortMessage returns err's message on one line without the source
// location and code onnxruntime prefixes
// ("/onnxruntime_src/...cc:1952 ... [ONNXRuntimeError] : 1 : FAIL : ").
func ortMessage(err error) string {
	msg := oneLine(err)
	const tag = "[ONNXRuntimeError] : "
	if i := strings.Index(msg, tag); i >= 0 {
		rest := msg[i+len(tag):]
		if _, after, ok := strings.Cut(rest, " : "); ok { // the numeric code
			if _, after, ok := strings.Cut(after, " : "); ok { // the code's name
				return after
			}
		}
	}
	return msg
}

// logPlacement writes the one line per session that says where it runs: a
// warning when a requested CUDA device is not used, else a debug line (a process
// opens about ten sessions: at info they would bury what a user needs first).
func logPlacement(log *slog.Logger, name string, p Placement) {
	if log == nil {
		return
	}
	if p.Fallback != nil {
		log.Warn("CUDA unavailable: model runs on the CPU", "model", name, "requested", p.Requested.String(),
			"provider", p.Provider, "reason", oneLine(p.Fallback))
		return
	}
	log.Debug("model session ready", "model", name, "provider", p.Provider, "device", p.String(),
		"requested", p.Requested.String())
}
