package faceapi

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testJPEG and testPNG are small real images made by Go's encoders.
func testImage() image.Image {
	im := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			im.Set(x, y, color.RGBA{R: uint8(4 * x), G: uint8(5 * y), B: 128, A: 255})
		}
	}
	return im
}

func testJPEG(t testing.TB) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, testImage(), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testPNG(t testing.TB) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, testImage()); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngHeader is a PNG declaring w x h pixels with no pixel data.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	_ = binary.Write(&b, binary.BigEndian, uint32(13))
	b.WriteString("IHDR")
	b.Write(ihdr)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte("IHDR"), ihdr...)))
	b.Write([]byte{0, 0, 0, 0})
	b.WriteString("IEND")
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE([]byte("IEND")))
	return b.Bytes()
}

func TestCheckImage(t *testing.T) {
	j, p := testJPEG(t), testPNG(t)
	for name, c := range map[string]struct {
		data []byte
		want error
		msg  string
	}{
		"jpeg":                 {j, nil, ""},
		"png":                  {p, nil, ""},
		"jpeg with trailer":    {append(append([]byte{}, j...), "garbage after EOI"...), nil, ""},
		"empty":                {nil, ErrInvalidImage, "empty"},
		"text":                 {[]byte("hello, world"), ErrInvalidImage, "not a JPEG or PNG"},
		"gif":                  {[]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), ErrInvalidImage, "not a JPEG or PNG"},
		"truncated jpeg":       {j[:len(j)/2], ErrInvalidImage, "truncated"},
		"jpeg without EOI":     {j[:len(j)-2], ErrInvalidImage, "truncated"},
		"jpeg header only":     {j[:200], ErrInvalidImage, ""},
		"truncated png":        {p[:len(p)-20], ErrInvalidImage, "truncated"},
		"png header only":      {p[:40], ErrInvalidImage, ""},
		"50000x50000 png":      {pngHeader(50000, 50000), ErrImageTooLarge, "50000x50000"},
		"8193x8192 png":        {pngHeader(8193, 8192), ErrImageTooLarge, "exceeds"},
		"0x10 png":             {pngHeader(0, 10), ErrInvalidImage, ""},
		"8192x8192 png header": {pngHeader(8192, 8192), ErrInvalidImage, "IDAT"}, // within the size limit; refused for lacking image data
	} {
		info, err := CheckImage(c.data, 0)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: error %v, want %v saying %q (info %+v)", name, err, c.want, c.msg, info)
		}
	}
	if info, err := CheckImage(j, 0); err != nil || info.Format != "jpeg" || info.Width != 64 || info.Height != 48 {
		t.Fatalf("jpeg info %+v, %v", info, err)
	}
	if _, err := CheckImage(j, 64*47); !errors.Is(err, ErrImageTooLarge) {
		t.Fatalf("a 64x48 image under a 64x47 limit: %v", err)
	}
}

// FuzzCheckImage: any bytes are accepted as a complete JPEG/PNG within the pixel limit, or
// refused with one of the two sentinel errors; never a panic.
func FuzzCheckImage(f *testing.F) {
	f.Add(testJPEG(f))
	f.Add(testPNG(f))
	j := testJPEG(f)
	f.Add(j[:len(j)/2])
	f.Add(pngHeader(50000, 50000))
	f.Add([]byte("\xff\xd8\xff\xda\x00\x02\xff"))
	f.Add([]byte("\xff\xd8\xff\xd9"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := CheckImage(data, 1<<20)
		if err != nil {
			if !errors.Is(err, ErrInvalidImage) && !errors.Is(err, ErrImageTooLarge) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if info.Format != "jpeg" && info.Format != "png" || info.Width*info.Height > 1<<20 || info.Width <= 0 || info.Height <= 0 {
			t.Fatalf("accepted %+v", info)
		}
	})
}

func TestDecodeBase64(t *testing.T) {
	raw := []byte{0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0xfb, 0xef}
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(raw),
		base64.RawStdEncoding.EncodeToString(raw),
		base64.URLEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw),
		"data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(raw),
		"/9j/\n4AAQ\r\n++8=",
	} {
		got, err := decodeBase64(s)
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("decodeBase64(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "====", "%%%", "data:image/jpeg,abcd", "data:image/jpeg;base64", "ab+c-d"} {
		if _, err := decodeBase64(s); err == nil {
			t.Errorf("decodeBase64(%q) accepted", s)
		}
	}
}

func FuzzDecodeBase64(f *testing.F) {
	for _, s := range []string{"", "/9j/4AAQ", "data:image/png;base64,iVBORw0KGgo=", "a-b_", "====", "data:,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := decodeBase64(s)
		if err == nil && len(out) == 0 {
			t.Fatalf("decodeBase64(%q) returned nothing without an error", s)
		}
	})
}

var testSpec = formSpec{images: []imageField{{name: "image1", aliases: []string{"img1"}}, {name: "photos", multi: true}},
	fields: []string{"heads", "threshold"}}

func request(t testing.TB, ct string, body []byte, query string) *http.Request {
	r := httptest.NewRequest("POST", "/v1/x"+query, bytes.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	return r
}

func TestParseForm(t *testing.T) {
	img := testJPEG(t)
	// multipart: files under names and aliases, repeated multi fields, text fields.
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	fw, _ := w.CreateFormFile("img1", "a.jpg")
	_, _ = fw.Write(img)
	for range 2 {
		fw, _ = w.CreateFormFile("photos", "p.jpg")
		_, _ = fw.Write(img[:10])
	}
	_ = w.WriteField("heads", "age,gender")
	_ = w.Close()
	f, err := parseForm(request(t, w.FormDataContentType(), b.Bytes(), "?threshold=0.5"), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.images["image1"][0], img) || len(f.images["photos"]) != 2 || f.fields["heads"] != "age,gender" || f.fields["threshold"] != "0.5" {
		t.Fatalf("multipart form: %d/%d images, fields %v", len(f.images["image1"]), len(f.images["photos"]), f.fields)
	}
	// JSON: base64 strings, an array for the multi field, scalar fields of any JSON type.
	body := `{"image1": "` + base64.StdEncoding.EncodeToString(img) + `", "photos": ["/9j/", "data:image/png;base64,iVBO"],` +
		`"heads": ["age", "pose"], "threshold": 0.25}`
	f, err = parseForm(request(t, "application/json; charset=utf-8", []byte(body), ""), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.images["image1"][0], img) || len(f.images["photos"]) != 2 || f.fields["heads"] != "age,pose" || f.fields["threshold"] != "0.25" {
		t.Fatalf("JSON form: fields %v", f.fields)
	}
	// Raw body: the first image field, fields from the query.
	f, err = parseForm(request(t, "image/jpeg", img, "?heads=pose"), testSpec)
	if err != nil || !bytes.Equal(f.images["image1"][0], img) || f.fields["heads"] != "pose" {
		t.Fatalf("raw: %v %v", err, f.fields)
	}

	for name, c := range map[string]struct {
		ct, body, query, code string
	}{
		"no content type":    {"", "x", "", "unsupported_media_type"},
		"text/plain":         {"text/plain", "x", "", "unsupported_media_type"},
		"bad media type":     {"multipart/form-data; boundary", "x", "", "unsupported_media_type"},
		"unknown query":      {"image/jpeg", "x", "?hedas=1", "unknown_field"},
		"bad query":          {"image/jpeg", "x", "?a=%zz", "invalid_query"},
		"json not an object": {"application/json", `"x"`, "", "invalid_json"},
		"json null":          {"application/json", `null`, "", "invalid_json"},
		"json trailing":      {"application/json", `{} {}`, "", "invalid_json"},
		"json unknown field": {"application/json", `{"foo": 1}`, "", "unknown_field"},
		"json image number":  {"application/json", `{"image1": 5}`, "", "invalid_field"},
		"json single array":  {"application/json", `{"image1": ["/9j/"]}`, "", "invalid_field"},
		"json bad base64":    {"application/json", `{"image1": "!!"}`, "", "invalid_base64"},
		"json object field":  {"application/json", `{"heads": {"a": 1}}`, "", "invalid_field"},
		"json mixed array":   {"application/json", `{"heads": ["a", 1]}`, "", "invalid_field"},
		"no boundary":        {"multipart/form-data", "x", "", "invalid_multipart"},
		"broken multipart":   {"multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"heads\"\r\n\r\nabc", "", "invalid_multipart"},
		"unknown part":       {"multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nabc\r\n--b--\r\n", "", "unknown_field"},
		"repeated single image": {"multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"image1\"\r\n\r\na\r\n" +
			"--b\r\nContent-Disposition: form-data; name=\"img1\"\r\n\r\nb\r\n--b--\r\n", "", "invalid_field"},
	} {
		_, err := parseForm(request(t, c.ct, []byte(c.body), c.query), testSpec)
		if err == nil || err.Code != c.code || err.Status < 400 || err.Status > 499 || err.Message == "" {
			t.Errorf("%s: %v, want %s", name, err, c.code)
		}
	}
	// Structural bounds: a long text field, too many images.
	long := "--b\r\nContent-Disposition: form-data; name=\"heads\"\r\n\r\n" + strings.Repeat("a", maxFieldBytes+1) + "\r\n--b--\r\n"
	if _, err := parseForm(request(t, "multipart/form-data; boundary=b", []byte(long), ""), testSpec); err == nil || err.Code != "invalid_field" {
		t.Errorf("long field: %v", err)
	}
	many := `{"photos": [` + strings.Repeat(`"/9j/",`, maxImages) + `"/9j/"]}`
	if _, err := parseForm(request(t, "application/json", []byte(many), ""), testSpec); err == nil || err.Code != "too_many_images" {
		t.Errorf("too many images: %v", err)
	}
}

// FuzzParseForm: any body under any content type decodes or fails with a 4xx apiError.
func FuzzParseForm(f *testing.F) {
	img := testJPEG(f)
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	fw, _ := w.CreateFormFile("image1", "a.jpg")
	_, _ = fw.Write(img[:64])
	_ = w.WriteField("heads", "age")
	_ = w.Close()
	f.Add(w.FormDataContentType(), b.Bytes(), "")
	f.Add("application/json", []byte(`{"image1": "/9j/4AAQ", "photos": ["/9j/"], "heads": "age", "threshold": 1}`), "?heads=age")
	f.Add("application/json", []byte(`{"image1": "data:image/jpeg;base64,/9j/"}`), "")
	f.Add("image/png", []byte("\x89PNG"), "?threshold=0.3")
	f.Add("multipart/form-data; boundary=b", []byte("--b\r\n\r\n--b--"), "")
	f.Add("text/plain", []byte("x"), "")
	f.Fuzz(func(t *testing.T, ct string, body []byte, query string) {
		for i := 0; i < len(query); i++ {
			if query[i] <= ' ' || query[i] > '~' || query[i] == '#' {
				return // not a request line httptest can build
			}
		}
		if query != "" && query[0] != '?' {
			query = "?" + query
		}
		fm, err := parseForm(request(t, ct, body, query), testSpec)
		if err != nil {
			if err.Status < 400 || err.Status > 499 || err.Code == "" || err.Message == "" {
				t.Fatalf("error %+v is not a precise 4xx", err)
			}
			return
		}
		n := 0
		for name, imgs := range fm.images {
			if _, ok := testSpec.imageName(name); !ok {
				t.Fatalf("image under unknown field %q", name)
			}
			n += len(imgs)
		}
		if n > maxImages {
			t.Fatalf("%d images accepted", n)
		}
		for k := range fm.fields {
			if !testSpec.hasField(k) {
				t.Fatalf("unknown field %q accepted", k)
			}
		}
	})
}
