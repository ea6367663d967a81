package testenv

import (
	"io"
	"net/http"
	"testing"
)

// GetAsHost GETs url with host in its Host header (as a browser or scraper reaching the server
// by that name would) and returns the status and body; it fails t when the request fails.
func GetAsHost(t testing.TB, url, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
