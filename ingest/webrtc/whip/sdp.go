package whip

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// ErrOffer is wrapped by every error CheckOffer returns.
var ErrOffer = errors.New("unusable SDP offer")

// startBitrateParam is Chromium's fmtp parameter for the sender's initial bandwidth estimate.
const startBitrateParam = "x-google-start-bitrate"

// CheckOffer validates a publisher's SDP offer enough to tell it precisely what is wrong before
// the WebRTC stack sees it: the offer must parse as SDP, have a video section that sends
// (sendonly or sendrecv), and offer VP8 or H264 there. It returns the supported codecs offered,
// in the offer's order. Every error wraps ErrOffer.
func CheckOffer(offer string) ([]Codec, error) {
	var sd sdp.SessionDescription
	if strings.TrimSpace(offer) == "" {
		return nil, fmt.Errorf("%w: the body is empty (send the SDP offer, Content-Type application/sdp)", ErrOffer)
	}
	if err := sd.UnmarshalString(offer); err != nil {
		return nil, fmt.Errorf("%w: not valid SDP: %w", ErrOffer, err)
	}
	sessionDir := direction(sd.Attributes, "sendrecv")
	var video, sending bool
	var offered []string
	var codecs []Codec
	for _, md := range sd.MediaDescriptions {
		if md == nil || md.MediaName.Media != "video" {
			continue
		}
		video = true
		if dir := direction(md.Attributes, sessionDir); dir != "sendrecv" && dir != "sendonly" {
			continue
		}
		sending = true
		for _, pt := range md.MediaName.Formats {
			name, ok := rtpmapCodec(md, pt)
			if !ok {
				continue
			}
			if c, ok := supported(name); ok {
				if !slices.Contains(codecs, c) {
					codecs = append(codecs, c)
				}
			} else if !slices.Contains(offered, name) {
				offered = append(offered, name)
			}
		}
	}
	switch {
	case !video:
		return nil, fmt.Errorf("%w: it has no video section (m=video)", ErrOffer)
	case !sending:
		return nil, fmt.Errorf("%w: its video is not sent (direction recvonly or inactive; publish with sendonly)", ErrOffer)
	case len(codecs) == 0:
		return nil, fmt.Errorf("%w: its video codecs (%s) include neither VP8 nor H264", ErrOffer, strings.Join(offered, ", "))
	}
	return codecs, nil
}

// answerCodecs lists the supported codecs an answer accepts for video, in its order.
func answerCodecs(answer string) ([]Codec, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(answer); err != nil {
		return nil, fmt.Errorf("answer: %w", err)
	}
	var out []Codec
	for _, md := range sd.MediaDescriptions {
		if md == nil || md.MediaName.Media != "video" || md.MediaName.Port.Value == 0 && !hasAttr(md, "bundle-only") {
			continue
		}
		for _, pt := range md.MediaName.Formats {
			if name, ok := rtpmapCodec(md, pt); ok {
				if c, ok := supported(name); ok && !slices.Contains(out, c) {
					out = append(out, c)
				}
			}
		}
	}
	return out, nil
}

// SetStartBitrate returns answer with x-google-start-bitrate=kbps in the fmtp of every VP8 and
// H264 format of its video sections (adding an fmtp line where there is none, replacing an
// existing value), so Chromium starts sending near its target resolution instead of ramping up
// from 480x270 over ~20 s. Other formats (rtx, red, ulpfec) are left alone.
func SetStartBitrate(answer string, kbps int) (string, error) {
	if kbps <= 0 {
		return "", fmt.Errorf("start bitrate %d kbps: must be positive", kbps)
	}
	if err := plainLines(answer); err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(answer); err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	value := startBitrateParam + "=" + strconv.Itoa(kbps)
	for _, md := range sd.MediaDescriptions {
		if md == nil || md.MediaName.Media != "video" {
			continue
		}
		for _, pt := range md.MediaName.Formats {
			name, ok := rtpmapCodec(md, pt)
			if !ok {
				continue
			}
			if _, ok := supported(name); !ok {
				continue
			}
			found := false
			for i, a := range md.Attributes {
				fpt, params, ok := strings.Cut(a.Value, " ")
				if a.Key != "fmtp" || !ok || fpt != pt {
					continue
				}
				found = true
				md.Attributes[i].Value = pt + " " + withParam(params, value)
			}
			if !found {
				md.Attributes = append(md.Attributes, sdp.NewAttribute("fmtp", pt+" "+value))
			}
		}
	}
	b, err := sd.Marshal()
	if err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	// pion's parser accepts some descriptions its marshaller turns into ones it rejects (an
	// empty origin); never hand those on.
	var check sdp.SessionDescription
	if err := check.Unmarshal(b); err != nil {
		return "", fmt.Errorf("answer: does not survive a round trip: %w", err)
	}
	return string(b), nil
}

// plainLines refuses control characters other than tab and the CRLF or LF line ends: pion's
// parser and marshaller do not round-trip them (a lone CR in a value changes it).
func plainLines(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\r' && i+1 < len(s) && s[i+1] == '\n', c == '\n', c == '\t':
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("control character %#02x at byte %d", c, i)
		}
	}
	return nil
}

// withParam returns the fmtp parameter list params with startBitrateParam set by kv.
func withParam(params, kv string) string {
	var out []string
	for _, p := range strings.Split(params, ";") {
		p = strings.TrimSpace(p)
		if p == "" || strings.HasPrefix(p, startBitrateParam+"=") || p == startBitrateParam {
			continue
		}
		out = append(out, p)
	}
	return strings.Join(append(out, kv), ";")
}

// rtpmapCodec returns the encoding name the rtpmap of md gives payload type pt.
func rtpmapCodec(md *sdp.MediaDescription, pt string) (string, bool) {
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		apt, enc, ok := strings.Cut(a.Value, " ")
		if !ok || apt != pt {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSpace(enc), "/")
		return name, name != ""
	}
	return "", false
}

// supported maps an SDP encoding name to a codec the endpoint accepts.
func supported(name string) (Codec, bool) {
	switch strings.ToUpper(name) {
	case "VP8":
		return VP8, true
	case "H264":
		return H264, true
	}
	return "", false
}

// direction returns the direction attribute among attrs, or def.
func direction(attrs []sdp.Attribute, def string) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return def
}

func hasAttr(md *sdp.MediaDescription, key string) bool {
	_, ok := md.Attribute(key)
	return ok
}
