package whip

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

// chromiumOffer is the shape of a Chromium offer (trimmed: one video section, VP8, rtx, H264).
const chromiumOffer = "v=0\r\n" +
	"o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n" +
	"s=-\r\n" +
	"t=0 0\r\n" +
	"a=group:BUNDLE 0\r\n" +
	"a=extmap-allow-mixed\r\n" +
	"a=msid-semantic: WMS stream\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n" +
	"c=IN IP4 0.0.0.0\r\n" +
	"a=rtcp:9 IN IP4 0.0.0.0\r\n" +
	"a=ice-ufrag:abcd\r\n" +
	"a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n" +
	"a=ice-options:trickle\r\n" +
	"a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n" +
	"a=setup:actpass\r\n" +
	"a=mid:0\r\n" +
	"a=sendonly\r\n" +
	"a=msid:stream track\r\n" +
	"a=rtcp-mux\r\n" +
	"a=rtcp-rsize\r\n" +
	"a=rtpmap:96 VP8/90000\r\n" +
	"a=rtcp-fb:96 nack\r\n" +
	"a=rtcp-fb:96 nack pli\r\n" +
	"a=rtpmap:97 rtx/90000\r\n" +
	"a=fmtp:97 apt=96\r\n" +
	"a=rtpmap:102 H264/90000\r\n" +
	"a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n" +
	"a=rtpmap:103 rtx/90000\r\n" +
	"a=fmtp:103 apt=102\r\n"

func TestCheckOffer(t *testing.T) {
	codecs, err := CheckOffer(chromiumOffer)
	if err != nil || !slices.Equal(codecs, []Codec{VP8, H264}) {
		t.Fatalf("CheckOffer(chromium) = %v, %v", codecs, err)
	}
	h264First := strings.Replace(chromiumOffer, "96 97 102 103", "102 103 96 97", 1)
	if codecs, _ := CheckOffer(h264First); !slices.Equal(codecs, []Codec{H264, VP8}) {
		t.Fatalf("offer order not kept: %v", codecs)
	}
	for _, tc := range []struct{ name, offer, msg string }{
		{"empty", " \r\n", "empty"},
		{"garbage", "GET / HTTP/1.1\r\n", "not valid SDP"},
		{"no video", strings.Replace(chromiumOffer, "m=video", "m=audio", 1), "no video section"},
		{"recvonly", strings.Replace(chromiumOffer, "a=sendonly", "a=recvonly", 1), "not sent"},
		{"inactive session", strings.Replace(strings.Replace(chromiumOffer, "a=sendonly\r\n", "", 1), "t=0 0\r\n", "t=0 0\r\na=inactive\r\n", 1), "not sent"},
		{"vp9", strings.NewReplacer("VP8/", "VP9/", "H264/", "AV1/").Replace(chromiumOffer), "(VP9, rtx, AV1) include neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CheckOffer(tc.offer)
			if !errors.Is(err, ErrOffer) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want ErrOffer containing %q", err, tc.msg)
			}
		})
	}
}

func TestSetStartBitrate(t *testing.T) {
	// An answer with an fmtp for H264, none for VP8, and an old value to replace.
	answer := strings.Replace(chromiumOffer, "packetization-mode=1;", "packetization-mode=1;x-google-start-bitrate=300;", 1)
	out, err := SetStartBitrate(answer, 2500)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"a=fmtp:96 x-google-start-bitrate=2500\r\n",
		"a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f;x-google-start-bitrate=2500\r\n",
		"a=fmtp:97 apt=96\r\n", // rtx untouched
	} {
		if !strings.Contains(out, want) {
			t.Errorf("answer lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "x-google-start-bitrate") != 2 {
		t.Errorf("start bitrate set %d times, want 2:\n%s", strings.Count(out, "x-google-start-bitrate"), out)
	}
	if _, err := SetStartBitrate("nonsense", 2500); err == nil {
		t.Error("nonsense answer accepted")
	}
	if _, err := SetStartBitrate(chromiumOffer, 0); err == nil {
		t.Error("zero bitrate accepted")
	}
}

func FuzzCheckOffer(f *testing.F) {
	f.Add(chromiumOffer)
	f.Add(strings.Replace(chromiumOffer, "a=sendonly", "a=recvonly", 1))
	f.Add(fmt.Sprintf(videoOffer, "98", "a=sendonly\r\na=rtpmap:98 VP9/90000\r\n"))
	f.Add("v=0\r\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, offer string) {
		codecs, err := CheckOffer(offer)
		if err != nil {
			if !errors.Is(err, ErrOffer) {
				t.Fatalf("error %v does not wrap ErrOffer", err)
			}
			return
		}
		if len(codecs) == 0 {
			t.Fatal("accepted an offer without a supported codec")
		}
		for _, c := range codecs {
			if c != VP8 && c != H264 {
				t.Fatalf("codec %q", c)
			}
		}
	})
}

func FuzzSetStartBitrate(f *testing.F) {
	f.Add(chromiumOffer, 2500)
	f.Add(strings.Replace(chromiumOffer, "packetization-mode=1;", "x-google-start-bitrate=1;;packetization-mode=1;", 1), 1)
	f.Add("v=0\r\n", 10)
	f.Fuzz(func(t *testing.T, answer string, kbps int) {
		out, err := SetStartBitrate(answer, kbps)
		if err != nil {
			return
		}
		// The result parses, and every VP8/H264 format of a video section carries the value.
		var sd sdp.SessionDescription
		if err := sd.UnmarshalString(out); err != nil {
			t.Fatalf("output does not parse: %v\n%q", err, out)
		}
		want := fmt.Sprintf("x-google-start-bitrate=%d", kbps)
		for _, md := range sd.MediaDescriptions {
			if md.MediaName.Media != "video" {
				continue
			}
			for _, pt := range md.MediaName.Formats {
				name, ok := rtpmapCodec(md, pt)
				if _, sup := supported(name); !ok || !sup {
					continue
				}
				found := false
				for _, a := range md.Attributes {
					if p, params, ok := strings.Cut(a.Value, " "); a.Key == "fmtp" && ok && p == pt && strings.Contains(params, want) {
						found = true
					}
				}
				if !found {
					t.Fatalf("format %s (%s) lacks %s:\n%q", pt, name, want, out)
				}
			}
		}
	})
}
