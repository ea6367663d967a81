package onnx

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Only what the legacy CUDA call needs is declared here: onnxruntime_go
// keeps its OrtApi pointer to itself and wraps only the V2 CUDA options.
// OrtApi is a struct of function pointers that onnxruntime only ever
// appends to, so a function's index never changes; the indices below are
// those of onnxruntime_c_api.h (ORT_API_VERSION 24, as onnxruntime_go
// v1.27.0 ships it).
typedef struct OrtApi OrtApi;
typedef struct OrtStatus OrtStatus;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct {
	const OrtApi* (*GetApi)(uint32_t version);
	const char* (*GetVersionString)(void);
} vigilOrtApiBase;

enum {
	vigilIdxGetErrorMessage = 2,
	vigilIdxReleaseStatus = 93,
	vigilIdxAppendCUDAV1 = 152, // SessionOptionsAppendExecutionProvider_CUDA
};

// vigilCUDAOptions mirrors OrtCUDAProviderOptions, the V1 struct, whose
// layout onnxruntime keeps frozen (new options go to the V2 API).
typedef struct {
	int device_id;
	int cudnn_conv_algo_search;
	size_t gpu_mem_limit;
	int arena_extend_strategy;
	int do_copy_in_default_stream;
	int has_user_compute_stream;
	void* user_compute_stream;
	void* default_memory_arena_cfg;
	int tunable_op_enable;
	int tunable_op_tuning_enable;
	int tunable_op_max_tuning_duration_ms;
} vigilCUDAOptions;

_Static_assert(sizeof(void*) != 8 || sizeof(vigilCUDAOptions) == 64, "OrtCUDAProviderOptions is 64 bytes on LP64");
_Static_assert(sizeof(void*) != 8 || offsetof(vigilCUDAOptions, gpu_mem_limit) == 8, "gpu_mem_limit at 8");
_Static_assert(sizeof(void*) != 8 || offsetof(vigilCUDAOptions, user_compute_stream) == 32, "user_compute_stream at 32");
_Static_assert(sizeof(void*) != 8 || offsetof(vigilCUDAOptions, tunable_op_max_tuning_duration_ms) == 56, "tunable fields at 48..56");

// vigil_api opens the already loaded library at path once more (so it
// stays loaded while the returned handle is open) and returns its OrtApi
// for version, or NULL with *handle NULL.
static const OrtApi* vigil_api(const char* path, uint32_t version, void** handle) {
	*handle = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
	if (*handle == NULL) return NULL;
	const vigilOrtApiBase* (*base)(void) = (const vigilOrtApiBase* (*)(void))dlsym(*handle, "OrtGetApiBase");
	const OrtApi* api = base ? base()->GetApi(version) : NULL;
	if (api == NULL) {
		dlclose(*handle);
		*handle = NULL;
	}
	return api;
}

static void* vigil_fn(const OrtApi* api, int i) { return ((void* const*)api)[i]; }

// vigil_append_cuda_v1 appends the CUDA provider with the V1 options; it
// returns NULL or onnxruntime's error message (free it).
static char* vigil_append_cuda_v1(const OrtApi* api, OrtSessionOptions* so, int device, int algo, size_t mem_limit) {
	vigilCUDAOptions o;
	memset(&o, 0, sizeof o);
	o.device_id = device;
	o.cudnn_conv_algo_search = algo;
	o.gpu_mem_limit = mem_limit ? mem_limit : SIZE_MAX;
	o.do_copy_in_default_stream = 1;
	OrtStatus* (*append)(OrtSessionOptions*, const vigilCUDAOptions*) =
		(OrtStatus* (*)(OrtSessionOptions*, const vigilCUDAOptions*))vigil_fn(api, vigilIdxAppendCUDAV1);
	OrtStatus* st = append(so, &o);
	if (st == NULL) return NULL;
	const char* (*message)(const OrtStatus*) = (const char* (*)(const OrtStatus*))vigil_fn(api, vigilIdxGetErrorMessage);
	char* out = strdup(message(st));
	void (*release)(OrtStatus*) = (void (*)(OrtStatus*))vigil_fn(api, vigilIdxReleaseStatus);
	release(st);
	return out;
}

// vigil_diagnose loads the provider libraries the way onnxruntime does
// (shared globally, then cuda) and returns NULL, or the first dlerror
// message (free it). What it loads it unloads again.
static char* vigil_diagnose(const char* shared, const char* cuda) {
	char* out = NULL;
	void* hs = dlopen(shared, RTLD_NOW | RTLD_GLOBAL);
	void* hc = NULL;
	if (hs != NULL) hc = dlopen(cuda, RTLD_LAZY | RTLD_LOCAL);
	if (hs == NULL || hc == NULL) {
		const char* e = dlerror();
		out = strdup(e ? e : "unknown dlopen error");
	}
	if (hc != NULL) dlclose(hc);
	if (hs != NULL) dlclose(hs);
	return out;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// ortAPIVersion is the C API version onnxruntime_go v1.27.0 requests, and
// so the one Vigil needs: onnxruntime 1.24 or newer.
const ortAPIVersion = 24

// legacyAPI is a second handle on the loaded onnxruntime library and its
// OrtApi, for the legacy V1 CUDA call that onnxruntime_go does not wrap.
// Some onnxruntime builds (the pinned GPU set of models/gpu.json among
// them) load the CUDA provider library through that call only: their V2
// CUDA options are "not enabled in this build".
type legacyAPI struct {
	handle unsafe.Pointer
	api    *C.OrtApi
	lib    string
}

// openLegacyAPI returns the OrtApi of the library at lib, which must be
// loaded already (by ort.InitializeEnvironment).
func openLegacyAPI(lib string) (*legacyAPI, error) {
	cpath := C.CString(lib)
	defer C.free(unsafe.Pointer(cpath))
	var h unsafe.Pointer
	api := C.vigil_api(cpath, ortAPIVersion, &h)
	if api == nil {
		return nil, fmt.Errorf("onnxruntime library %s gives no C API version %d", lib, ortAPIVersion)
	}
	return &legacyAPI{handle: h, api: api, lib: lib}, nil
}

// close releases the second handle on the library.
func (l *legacyAPI) close() {
	if l != nil && l.handle != nil {
		C.dlclose(l.handle)
		l.handle, l.api = nil, nil
	}
}

// convAlgo maps a ConvAlgoSearch to OrtCudnnConvAlgoSearch.
func convAlgo(s ConvAlgoSearch) C.int {
	switch s {
	case ConvSearchHeuristic:
		return 1
	case ConvSearchDefault:
		return 2
	}
	return 0 // exhaustive, onnxruntime's default
}

// appendCUDAV1 adds the CUDA provider to so through the V1 call. When
// onnxruntime cannot load the provider library its message says only
// that; appendCUDAV1 then loads the provider libraries itself to report
// why (a missing CUDA or cuDNN library, typically).
func (l *legacyAPI) appendCUDAV1(so *ort.SessionOptions, d Device) error {
	ptr, err := sessionOptionsPointer(so)
	if err != nil {
		return err
	}
	msg := C.vigil_append_cuda_v1(l.api, (*C.OrtSessionOptions)(ptr), C.int(d.ID), convAlgo(d.CUDA.ConvAlgoSearch), C.size_t(d.CUDA.MemLimit))
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return fmt.Errorf("load CUDA provider: %s%s", ortMessage(errors.New(C.GoString(msg))), l.diagnose())
}

// diagnose loads the provider libraries beside the onnxruntime library the
// way onnxruntime does and returns ": <why>" when that fails, or "".
func (l *legacyAPI) diagnose() string {
	dir := filepath.Dir(l.lib)
	shared := filepath.Join(dir, "libonnxruntime_providers_shared.so")
	cuda := filepath.Join(dir, "libonnxruntime_providers_cuda.so")
	for _, p := range []string{shared, cuda} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Sprintf(": %s is missing", p)
		}
	}
	cs, cc := C.CString(shared), C.CString(cuda)
	defer C.free(unsafe.Pointer(cs))
	defer C.free(unsafe.Pointer(cc))
	if e := C.vigil_diagnose(cs, cc); e != nil {
		defer C.free(unsafe.Pointer(e))
		return ": " + C.GoString(e)
	}
	return ""
}

// sessionOptionsPointer returns the OrtSessionOptions* inside so.
// onnxruntime_go v1.27.0 keeps it as the struct's only, unexported field;
// the check fails (rather than crashing) if a later version changes that.
func sessionOptionsPointer(so *ort.SessionOptions) (unsafe.Pointer, error) {
	t := reflect.TypeFor[ort.SessionOptions]()
	if t.NumField() != 1 || t.Field(0).Type.Kind() != reflect.Pointer || t.Size() != unsafe.Sizeof(uintptr(0)) {
		return nil, errors.New("onnxruntime_go's SessionOptions layout changed: the legacy CUDA call needs updating")
	}
	p := *(*unsafe.Pointer)(unsafe.Pointer(so))
	if p == nil {
		return nil, errors.New("session options are destroyed")
	}
	return p, nil
}
