package ingest

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// diagnoseHTTP requests u once and turns what the server answers into an error a user can act
// on: the request's failure (connection refused, DNS, TLS), an HTTP error status, or a body that
// is not video (a web page or login form where a camera's stream URL was expected). It reads
// only the response headers.
func diagnoseHTTP(ctx context.Context, u *url.URL, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("invalid HTTP request: %w", err)
	}
	req.Header.Set("User-Agent", "vigil")
	client := &http.Client{Timeout: timeout}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("HTTP request failed: %w", unwrapURLError(err))
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	ct := resp.Header.Get("Content-Type")
	return fmt.Errorf("%s", describeContentType(ct))
}

// describeContentType explains why a body of the given Content-Type did not decode as video.
func describeContentType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(ct))
	}
	switch {
	case mt == "":
		return "the server sent no Content-Type and OpenCV/FFmpeg could not decode the body as video"
	case mt == "text/html" || mt == "application/xhtml+xml":
		return fmt.Sprintf("the server sent a web page (%s), not video: give the camera's stream URL (MJPEG or video), not its web interface", mt)
	case strings.HasPrefix(mt, "text/") || mt == "application/json" || mt == "application/xml":
		return fmt.Sprintf("the server sent %q, not video", truncate(mt, 80))
	}
	return fmt.Sprintf("the server sent %q, which OpenCV/FFmpeg could not decode as video", truncate(mt, 80))
}

// unwrapURLError drops net/http's *url.Error wrapper, which repeats the URL (and would repeat
// its password); the caller names the URL, redacted.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
