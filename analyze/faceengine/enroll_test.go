package faceengine

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"testing"

	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// portraitWithSmallFace puts big at the left of a white page and small, scaled to a third of its
// size, at the top right: a portrait with a much smaller second face behind.
func portraitWithSmallFace(t *testing.T, big, small []byte) []byte {
	t.Helper()
	dec := func(b []byte) image.Image {
		im, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return im
	}
	bi, si := dec(big), dec(small)
	bs, ss := bi.Bounds().Size(), si.Bounds().Size()
	out := image.NewRGBA(image.Rect(0, 0, bs.X+ss.X/3+80, max(bs.Y, ss.Y/3)+40))
	draw.Draw(out, out.Bounds(), image.White, image.Point{}, draw.Src)
	draw.Draw(out, image.Rectangle{Min: image.Pt(20, 20), Max: image.Pt(20, 20).Add(bs)}, bi, bi.Bounds().Min, draw.Src)
	at := image.Pt(bs.X+60, 20)
	for y := range ss.Y / 3 {
		for x := range ss.X / 3 {
			out.Set(at.X+x, at.Y+y, si.At(si.Bounds().Min.X+3*x+1, si.Bounds().Min.Y+3*y+1))
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, out, &jpeg.Options{Quality: 92}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestEnrollChoosesFace enrolls photos with more than one face on the real models: the dominant
// face of a portrait with a small face behind it, the face in the request's box, and precise
// refusals, each answer saying which face was enrolled.
func TestEnrollChoosesFace(t *testing.T) {
	testenv.NeedsTestData(t)
	e := newEngine(t)
	f := newAPIFixture(t, e)
	obama := f.file(t, "faces/Barack_Obama/obama.jpg")
	twoPeople := f.file(t, "detect/two_people.jpg")
	photo := portraitWithSmallFace(t, obama, f.file(t, "faces/Joe_Biden/biden.jpg"))

	var det faceapi.FacesResponse
	call(t, "POST", f.url+"/v1/detect", bytes.NewReader(photo), "image/jpeg").ok(t, "detect the portrait", 200, &det)
	if len(det.Faces) != 2 {
		t.Fatalf("the portrait with a small face shows %d faces to the detector, want 2", len(det.Faces))
	}
	t.Logf("portrait faces: %+v (score %.3f), %+v (score %.3f)", det.Faces[0].Box, det.Faces[0].Score, det.Faces[1].Box, det.Faces[1].Score)

	var got faceapi.EnrollResponse
	body, ct := form(t, field("name", "Barack Obama"), filePart("photos", photo))
	call(t, "POST", f.url+"/v1/identities", body, ct).ok(t, "enroll the dominant face", 201, &got)
	if len(got.Faces) != 1 || got.Faces[0].Chosen != faceapi.ChosenDominant || got.Faces[0].FacesFound != 2 ||
		got.Faces[0].Box != det.Faces[0].Box || got.Faces[0].Photo != got.Added[0] || got.Identity.Photos[0].Box != det.Faces[0].Box {
		t.Fatalf("enrolled %s, want the larger face %+v, chosen as dominant among 2", mustJSON(got), det.Faces[0].Box)
	}
	// The enrolled embedding is Obama's: another photo of him is identified.
	var idf faceapi.IdentifyResponse
	body, ct = form(t, filePart("image", f.file(t, "faces/Barack_Obama/knn_test_obama1.jpg")))
	call(t, "POST", f.url+"/v1/identify", body, ct).ok(t, "identify Obama", 200, &idf)
	if len(idf.Faces) != 1 || idf.Faces[0].Identity == nil || idf.Faces[0].Identity.Name != "Barack Obama" {
		t.Fatalf("identify another Obama photo after enrolling the dominant face: %s", mustJSON(idf))
	}

	// Two people of similar size: refused, naming the boxes; the box field picks one.
	call(t, "POST", f.url+"/v1/detect", bytes.NewReader(twoPeople), "image/jpeg").ok(t, "detect two people", 200, ptrZero(&det))
	if len(det.Faces) != 2 {
		t.Fatalf("two_people.jpg: %d faces", len(det.Faces))
	}
	body, ct = form(t, field("name", "Second Person"), filePart("photos", twoPeople))
	call(t, "POST", f.url+"/v1/identities", body, ct).fails(t, "two people, no box", 422, "multiple_faces", "2 faces", "box field")
	b := det.Faces[1].Box
	pad := (b.X2 - b.X1) / 5
	box := fmt.Sprintf("%.0f,%.0f,%.0f,%.0f", b.X1-pad, b.Y1-pad, b.X2+pad, b.Y2+pad)
	body, ct = form(t, field("name", "Second Person"), field("box", box), filePart("photos", twoPeople))
	call(t, "POST", f.url+"/v1/identities", body, ct).ok(t, "two people, box on the second", 201, ptrZero(&got))
	if len(got.Faces) != 1 || got.Faces[0].Chosen != faceapi.ChosenBox || got.Faces[0].Box != b || got.Faces[0].FacesFound != 2 {
		t.Fatalf("enrolled %s, want the face %+v in box %s", mustJSON(got), b, box)
	}
	body, ct = jsonBody(t, map[string]any{"box": "0,0,5,5", "photos": []string{b64(obama)}})
	call(t, "POST", f.url+"/v1/identities/barack-obama/photos", body, ct).fails(t, "box on no face", 422, "no_face_in_box", "0,0,5,5")
	body, ct = jsonBody(t, map[string]any{"box": "1,2,3", "photos": []string{b64(obama)}})
	call(t, "POST", f.url+"/v1/identities/barack-obama/photos", body, ct).fails(t, "malformed box", 400, "invalid_field", "x1,y1,x2,y2")
}

// TestTooSmallFaceAPI: a face under 40 px is found but marked too_small: /v1/analyze gives no
// liveness, /v1/identify no identity and no matches although the person is enrolled, enrollment
// and /v1/verify refuse it saying it is too small.
func TestTooSmallFaceAPI(t *testing.T) {
	testenv.NeedsTestData(t)
	e := newEngine(t)
	f := newAPIFixture(t, e)
	obama := f.file(t, "faces/Barack_Obama/obama.jpg")
	small := scaled(t, obama, 0.11)
	body, ct := form(t, field("name", "Barack Obama"), filePart("photos", obama))
	call(t, "POST", f.url+"/v1/identities", body, ct).ok(t, "enroll Obama", 201, nil)

	var out faceapi.FacesResponse
	body, ct = form(t, filePart("image", small), field("heads", "age,liveness"))
	call(t, "POST", f.url+"/v1/analyze", body, ct).ok(t, "analyze a small face", 200, &out)
	if len(out.Faces) != 1 || !out.Faces[0].TooSmall || out.Faces[0].Liveness != nil || out.Faces[0].Age == nil {
		t.Fatalf("a small face: %s", mustJSON(out))
	}
	t.Logf("small face: %+v", out.Faces[0].Box)
	var idf faceapi.IdentifyResponse
	body, ct = form(t, filePart("image", small))
	call(t, "POST", f.url+"/v1/identify", body, ct).ok(t, "identify a small face", 200, &idf)
	if len(idf.Faces) != 1 || !idf.Faces[0].TooSmall || idf.Faces[0].Identity != nil || len(idf.Faces[0].Matches) != 0 {
		t.Fatalf("identify a small face: %s", mustJSON(idf))
	}
	body, ct = form(t, field("name", "Small Obama"), filePart("photos", small))
	call(t, "POST", f.url+"/v1/identities", body, ct).fails(t, "enroll a small face", 422, "face_too_small", "too small to recognise")
	body, ct = form(t, filePart("image1", obama), filePart("image2", small))
	call(t, "POST", f.url+"/v1/verify", body, ct).fails(t, "verify a small face", 422, "no_face", "image2", "too small to recognise")
}

// scaled returns the JPEG img scaled by k (nearest neighbour) on a 320x240 grey page.
func scaled(t *testing.T, img []byte, k float64) []byte {
	t.Helper()
	src, err := jpeg.Decode(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	out := image.NewRGBA(image.Rect(0, 0, 320, 240))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.Gray{Y: 128}), image.Point{}, draw.Src)
	b := src.Bounds()
	w, h := int(float64(b.Dx())*k), int(float64(b.Dy())*k)
	for y := range min(h, 240) {
		for x := range min(w, 320) {
			out.Set(x, y, src.At(b.Min.X+int(float64(x)/k), b.Min.Y+int(float64(y)/k)))
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, out, &jpeg.Options{Quality: 92}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
