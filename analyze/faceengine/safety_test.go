package faceengine

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/pkg/imageguard/guardtest"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// The probe's PNG bomb (100x100 declared, 9 GiB of image data) on /v1/detect is a 400 naming
// the cause; libpng would have spent half a minute inflating it and then answered 200.
func TestAPIRefusesPNGBomb(t *testing.T) {
	testenv.NeedsTestData(t)
	f := newAPIFixture(t, newEngine(t))
	bomb := guardtest.BombPNG(100, 100, 9<<10)
	for _, path := range []string{"/v1/detect", "/v1/analyze"} {
		call(t, "POST", f.url+path, bytes.NewReader(bomb), "image/png").fails(t, path, 400, "invalid_image", "inflates past")
	}
}

// A corrupt identity record in the bucket is skipped alike by every reader: GET answers 404
// identity_corrupt (not 500), the list leaves it out and counts it, the matcher leaves it out,
// and DELETE removes it.
func TestAPICorruptIdentityRecord(t *testing.T) {
	testenv.NeedsTestData(t)
	f := newAPIFixture(t, newEngine(t))
	ctx := context.Background()
	body, ct := form(t, field("name", "Barack Obama"), filePart("photo", f.file(t, "faces/Barack_Obama/obama.jpg")))
	call(t, "POST", f.url+"/v1/identities", body, ct).ok(t, "enroll", 201, nil)
	if _, err := f.store.KV().Put(ctx, gallery.KeyPrefix+"mallory", []byte(`{"schema":1,"name":`)); err != nil {
		t.Fatal(err)
	}
	call(t, "GET", f.url+"/v1/identities/mallory", nil, "").fails(t, "get corrupt", 404, "identity_corrupt", "mallory", "DELETE")
	var list faceapi.IdentityList
	call(t, "GET", f.url+"/v1/identities", nil, "").ok(t, "list", 200, &list)
	if len(list.Identities) != 1 || list.Identities[0].ID != "barack-obama" || list.Skipped != 1 {
		t.Fatalf("list = %+v, want barack-obama and 1 skipped", list)
	}
	if f.store.CorruptReads() < 2 {
		t.Fatalf("CorruptReads = %d, want the GET and the list counted", f.store.CorruptReads())
	}
	testenv.Eventually(t, 5*time.Second, "the watcher counts the corrupt record", func() bool { return f.gal.Corrupt() == 1 })
	call(t, "DELETE", f.url+"/v1/identities/mallory", nil, "").ok(t, "delete corrupt", 204, nil)
	call(t, "GET", f.url+"/v1/identities/mallory", nil, "").fails(t, "get deleted", 404, "identity_not_found")
	if !strings.Contains(string(call(t, "GET", f.url+"/v1/identities", nil, "").body), `"identities"`) {
		t.Fatal("list after delete")
	}
}
