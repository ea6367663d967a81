// avdecode.c: see avdecode.h.
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <string.h>

#include "avdecode.h"

struct AvdDecoder {
	AVFormatContext *fmt;
	AVCodecContext *dec;
	AVPacket *pkt;
	AVFrame *frame;
	struct SwsContext *sws;
	int stream;
	int64_t start; // stream start time in its time base (0 when unknown)
	AVRational tb;
};

static void set_err(char *err, int errlen, const char *what, int code) {
	char msg[128];
	av_strerror(code, msg, sizeof msg);
	snprintf(err, errlen, "%s: %s", what, msg);
}

AvdDecoder *avd_open(const char *url, int threads, char *err, int errlen) {
	// FFmpeg's own log goes to stderr; its errors come back to Go as errors instead.
	av_log_set_level(AV_LOG_FATAL);
	AvdDecoder *d = calloc(1, sizeof *d);
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	int r = avformat_open_input(&d->fmt, url, NULL, NULL);
	if (r < 0) {
		set_err(err, errlen, "open", r);
		free(d);
		return NULL;
	}
	if ((r = avformat_find_stream_info(d->fmt, NULL)) < 0) {
		set_err(err, errlen, "probe", r);
		goto fail;
	}
	const AVCodec *codec = NULL;
	d->stream = av_find_best_stream(d->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
	if (d->stream < 0 || !codec) {
		set_err(err, errlen, "no decodable video stream", d->stream < 0 ? d->stream : AVERROR_DECODER_NOT_FOUND);
		goto fail;
	}
	AVStream *st = d->fmt->streams[d->stream];
	for (unsigned i = 0; i < d->fmt->nb_streams; i++) {
		if ((int)i != d->stream) d->fmt->streams[i]->discard = AVDISCARD_ALL;
	}
	d->tb = st->time_base;
	d->start = st->start_time == AV_NOPTS_VALUE ? 0 : st->start_time;
	d->dec = avcodec_alloc_context3(codec);
	if (!d->dec || (r = avcodec_parameters_to_context(d->dec, st->codecpar)) < 0) {
		set_err(err, errlen, "decoder parameters", d->dec ? r : AVERROR(ENOMEM));
		goto fail;
	}
	d->dec->thread_count = threads;
	d->dec->pkt_timebase = st->time_base;
	if ((r = avcodec_open2(d->dec, codec, NULL)) < 0) {
		set_err(err, errlen, "open decoder", r);
		goto fail;
	}
	d->pkt = av_packet_alloc();
	d->frame = av_frame_alloc();
	if (!d->pkt || !d->frame) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return d;
fail:
	avd_close(d);
	return NULL;
}

void avd_close(AvdDecoder *d) {
	if (!d) return;
	sws_freeContext(d->sws);
	av_frame_free(&d->frame);
	av_packet_free(&d->pkt);
	avcodec_free_context(&d->dec);
	avformat_close_input(&d->fmt);
	free(d);
}

void avd_info(AvdDecoder *d, int *width, int *height, int64_t *period_ns) {
	AVStream *st = d->fmt->streams[d->stream];
	*width = d->dec->width;
	*height = d->dec->height;
	AVRational fr = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
	*period_ns = fr.num > 0 && fr.den > 0 ? av_rescale(1000000000, fr.den, fr.num) : 0;
}

static int64_t media_ns(AvdDecoder *d, int64_t ts) {
	return av_rescale_q(ts - d->start, d->tb, (AVRational){1, 1000000000});
}

int avd_receive(AvdDecoder *d, int64_t *media) {
	int r = avcodec_receive_frame(d->dec, d->frame);
	if (r < 0) return r;
	int64_t ts = d->frame->best_effort_timestamp;
	*media = ts == AV_NOPTS_VALUE ? -1 : media_ns(d, ts);
	return 0;
}

int avd_read(AvdDecoder *d, int64_t *media, int *has_time) {
	for (;;) {
		av_packet_unref(d->pkt);
		int r = av_read_frame(d->fmt, d->pkt);
		if (r < 0) return r;
		if (d->pkt->stream_index != d->stream) continue;
		int64_t ts = d->pkt->pts != AV_NOPTS_VALUE ? d->pkt->pts : d->pkt->dts;
		*has_time = ts != AV_NOPTS_VALUE;
		*media = *has_time ? media_ns(d, ts) : 0;
		return 0;
	}
}

int avd_send(AvdDecoder *d, int skip_nonref, int skip_deblock) {
	d->dec->skip_frame = skip_nonref ? AVDISCARD_NONREF : AVDISCARD_DEFAULT;
	d->dec->skip_loop_filter = skip_deblock ? AVDISCARD_ALL : AVDISCARD_DEFAULT;
	int r = avcodec_send_packet(d->dec, d->pkt);
	av_packet_unref(d->pkt);
	return r;
}

int avd_send_eof(AvdDecoder *d) { return avcodec_send_packet(d->dec, NULL); }

int avd_rewind(AvdDecoder *d) {
	int r = av_seek_frame(d->fmt, d->stream, d->start, AVSEEK_FLAG_BACKWARD);
	if (r < 0) return r;
	avcodec_flush_buffers(d->dec);
	return 0;
}

void avd_frame_size(AvdDecoder *d, int *width, int *height) {
	*width = d->frame->width;
	*height = d->frame->height;
}

int avd_bgr(AvdDecoder *d, uint8_t *dst, int stride) {
	AVFrame *f = d->frame;
	d->sws = sws_getCachedContext(d->sws, f->width, f->height, f->format, f->width, f->height,
	                              AV_PIX_FMT_BGR24, SWS_BICUBIC, NULL, NULL, NULL);
	if (!d->sws) return AVERROR(EINVAL);
	uint8_t *planes[4] = {dst, NULL, NULL, NULL};
	int strides[4] = {stride, 0, 0, 0};
	int h = sws_scale(d->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, planes, strides);
	return h == f->height ? 0 : AVERROR(EINVAL);
}

int avd_err_eof(void) { return AVERROR_EOF; }
int avd_err_again(void) { return AVERROR(EAGAIN); }
void avd_strerror(int code, char *buf, int len) { av_strerror(code, buf, len); }
