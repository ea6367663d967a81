// avdecode.h: a thin C layer over libavformat/libavcodec/libswscale for avdecode.go.
#ifndef VIGIL_AVDECODE_H
#define VIGIL_AVDECODE_H
#include <stdint.h>

typedef struct AvdDecoder AvdDecoder;

// avd_open opens url, finds its best video stream and opens a decoder with threads threads
// (0: FFmpeg picks). It returns NULL and writes a message into err on failure.
AvdDecoder *avd_open(const char *url, int threads, char *err, int errlen);
void avd_close(AvdDecoder *d);

// avd_info reports the stream's frame size and nominal frame period in microseconds (0 if
// unknown).
void avd_info(AvdDecoder *d, int *width, int *height, int64_t *period_ns);

// avd_receive returns 0 and the frame's media time (ns since the stream start) when a decoded
// frame is ready, AVERROR(EAGAIN) when the decoder needs a packet, AVERROR_EOF when drained.
int avd_receive(AvdDecoder *d, int64_t *media_ns);

// avd_read reads the next packet of the video stream: 0 with its media time (ns; has_time 0
// when the packet has no timestamp), AVERROR_EOF at the end, or another error.
int avd_read(AvdDecoder *d, int64_t *media_ns, int *has_time);

// avd_send sends the packet avd_read read to the decoder; skip_nonref asks the decoder to
// discard it if it is a non-reference frame (nothing else depends on it); skip_deblock asks it
// to decode the packet without the in-loop deblocking filter.
int avd_send(AvdDecoder *d, int skip_nonref, int skip_deblock);

// avd_send_eof starts draining the decoder at the end of the input.
int avd_send_eof(AvdDecoder *d);

// avd_rewind seeks back to the start and flushes the decoder.
int avd_rewind(AvdDecoder *d);

// avd_frame_size reports the last received frame's size.
void avd_frame_size(AvdDecoder *d, int *width, int *height);

// avd_bgr converts the last received frame to packed BGR24 of the frame's size into dst with
// row stride stride.
int avd_bgr(AvdDecoder *d, uint8_t *dst, int stride);

// avd_err_eof and avd_err_again expose the AVERROR codes to Go.
int avd_err_eof(void);
int avd_err_again(void);
void avd_strerror(int code, char *buf, int len);
#endif
