package ingest

import (
	"context"
)

// openDeviceLive opens a V4L2 camera for Open: the first open now (a missing device fails at
// once with the reason), then, like a network stream, reconnection with backoff when the camera
// goes away (unplugged, driver reset) and newest-frame reading.
func openDeviceLive(ctx context.Context, index string) (Source, error) {
	return OpenLive(ctx, "/dev/video"+index, func(ctx context.Context) (Source, error) {
		return openDevice(ctx, index)
	}, Backoff{}, nil)
}
