package api_test

import (
	"bytes"
	"testing"

	dt "github.com/vigil-video/vigil/analyze/classify/dataset/datasettest"
)

// Empty, garbage, truncated and corrupted archives are the client's fault: 400
// invalid_archive, never 500 (the hostile-input probe got 500 for each).
func TestDatasetUploadUnreadableArchive(t *testing.T) {
	ts, _, _ := server(t, 1<<20, nil)
	base := ts.URL + "/v1/classifier-projects"
	if code, out := call(t, "POST", base, "application/json", []byte(`{"name": "pets", "target": "frame"}`)); code != 201 {
		t.Fatalf("create: %d %v", code, out)
	}
	first := dt.File{Name: "cats/first.jpg", Data: dt.JPEG(t, 32, 32, 3)}
	good := dt.ZIP(t, append([]dt.File{first}, dt.Classes(t, 5, "cats", "dogs")...)...)
	corrupt := bytes.Clone(good)
	// The first entry's compressed data starts after its 30-byte local header and its name.
	for i := 30 + len(first.Name) + 2; i < 30+len(first.Name)+40; i++ {
		corrupt[i] ^= 0x5a
	}
	for name, archive := range map[string][]byte{
		"empty":           nil,
		"not a ZIP":       []byte("this is not an archive, just text"),
		"truncated":       good[:len(good)/2],
		"corrupt entry":   corrupt,
		"only the header": good[:30],
	} {
		code, out := call(t, "PUT", base+"/pets/dataset", "application/zip", archive)
		if code != 400 || errCode(out) != "invalid_archive" {
			t.Errorf("%s: %d %v, want 400 invalid_archive", name, code, out)
		}
	}
	if code, out := call(t, "PUT", base+"/pets/dataset", "application/zip", good); code != 200 {
		t.Fatalf("the intact archive: %d %v", code, out)
	}
}
