package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of every delivery. They are part of the wire format: renaming one is a breaking change.
const (
	// HeaderSignature carries "sha256=" and the lower-case hex HMAC-SHA256, keyed with the
	// shared secret, of the timestamp header's value, a ".", and the raw body. A receiver may
	// see several comma-separated signatures (reserved for key rotation): one valid signature
	// is enough. Absent when the sink has no secret.
	HeaderSignature = "X-Vigil-Signature"
	// HeaderTimestamp carries the Unix time in seconds (decimal) at which this attempt was
	// signed; each retry is signed afresh, so a receiver can reject old messages (replays).
	HeaderTimestamp = "X-Vigil-Timestamp"
	// HeaderDelivery identifies the document (Payload.Delivery). Retries and redeliveries carry
	// the same value: a receiver that must not act twice deduplicates on it.
	HeaderDelivery = "X-Vigil-Delivery"
	// HeaderType is the payload type (Payload.Type): "result" or an event kind.
	HeaderType = "X-Vigil-Type"
	// HeaderAttempt numbers the attempts of one delivery from 1.
	HeaderAttempt = "X-Vigil-Attempt"
)

// SignaturePrefix starts every signature in HeaderSignature.
const SignaturePrefix = "sha256="

// DefaultTolerance is Verify's default bound on the age (and clock skew) of a timestamp.
const DefaultTolerance = 5 * time.Minute

// ErrSignature is wrapped by Verify's errors: a missing, malformed or non-matching signature.
var ErrSignature = errors.New("webhook: invalid signature")

// ErrTimestamp is wrapped by Verify's errors for a missing or malformed timestamp, or one
// further from the receiver's clock than the tolerance.
var ErrTimestamp = errors.New("webhook: invalid timestamp")

// Sign returns the HeaderSignature value for body sent at Unix time ts (seconds) with secret:
// "sha256=" + hex(HMAC-SHA256(secret, decimal(ts) + "." + body)).
func Sign(secret []byte, ts int64, body []byte) string {
	return SignaturePrefix + hex.EncodeToString(mac(secret, strconv.FormatInt(ts, 10), body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery as a receiver gets it: timestamp and signature are the
// HeaderTimestamp and HeaderSignature values, body the raw request body, now the receiver's
// clock. It accepts when the timestamp is within tolerance of now (DefaultTolerance when
// tolerance is 0) and one of the signatures is the HMAC of timestamp + "." + body under secret.
// Errors wrap ErrTimestamp or ErrSignature. The comparison takes constant time.
//
// In another language: compute HMAC-SHA256 with the shared secret over the bytes of the
// timestamp header, then ".", then the body exactly as received (before any JSON parsing);
// hex-encode it in lower case; compare it, in constant time, with the header's value after
// "sha256="; reject timestamps older than a few minutes.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no secret to verify with", ErrSignature)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if timestamp == "" || len(timestamp) > 19 {
		return fmt.Errorf("%w: %q", ErrTimestamp, truncate(timestamp))
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || ts <= 0 || strconv.FormatInt(ts, 10) != timestamp {
		return fmt.Errorf("%w: %q is not decimal Unix seconds", ErrTimestamp, truncate(timestamp))
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s away from this clock (tolerance %s)", ErrTimestamp, d.Round(time.Second), tolerance)
	}
	if signature == "" {
		return fmt.Errorf("%w: no %s header", ErrSignature, HeaderSignature)
	}
	want := mac(secret, timestamp, body)
	candidates := strings.Split(signature, ",")
	if len(candidates) > 8 {
		return fmt.Errorf("%w: %d signatures (at most 8)", ErrSignature, len(candidates))
	}
	for _, c := range candidates {
		hexSig, ok := strings.CutPrefix(strings.TrimSpace(c), SignaturePrefix)
		if !ok || len(hexSig) != 2*sha256.Size {
			continue
		}
		got, err := hex.DecodeString(hexSig)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no signature matches", ErrSignature)
}

// VerifyRequest reads r's body (at most maxBody bytes; 0 means 1 MiB) and verifies it with
// Verify against the request's headers and time.Now. It returns the body for the handler to
// parse (ParsePayload). A body over maxBody is an error.
func VerifyRequest(r *http.Request, secret []byte, tolerance time.Duration, maxBody int64) ([]byte, error) {
	if maxBody <= 0 {
		maxBody = 1 << 20
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("webhook: read body: %w", err)
	}
	if int64(len(body)) > maxBody {
		return nil, fmt.Errorf("webhook: body longer than %d bytes", maxBody)
	}
	if err := Verify(secret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, time.Now(), tolerance); err != nil {
		return nil, err
	}
	return body, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
