package result

// Drop reasons for frames refused on receipt because of what their headers claim (see the other
// Reason constants in result.go).
const (
	// ReasonStreamMismatch: the frame's Vigil-Stream header names another stream than its
	// subject; the drop is announced on the subject's stream.
	ReasonStreamMismatch = "stream_mismatch"
	// ReasonFutureCapture: the frame's capture time is further in the future than the
	// analyzer's clock skew allowance.
	ReasonFutureCapture = "future_capture"
)
