package cli

import (
	"flag"
	"fmt"

	"github.com/vigil-video/vigil/analyze/classify/api"
	"github.com/vigil-video/vigil/analyze/classify/project"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/ingest/streams"
)

// routeLimitFlags are the upload limits of the routes that take more, or less, than an image
// (--max-upload-mb): each route has one limit and one setting, which its 413 names.
type routeLimitFlags struct {
	pushMB, datasetMB, modelMB float64
}

func (f *routeLimitFlags) register(fs *flag.FlagSet) {
	fs.Float64Var(&f.pushMB, "max-push-mb", float64(streams.DefaultPushMaxBytes>>20),
		"largest image pushed to POST /v1/streams/{stream}/frames in MiB; larger gets 413 (0: no limit)")
	fs.Float64Var(&f.datasetMB, "max-dataset-mb", float64(project.DefaultMaxUploadBytes>>20),
		"largest classifier training data set (ZIP) uploaded to PUT /v1/classifier-projects/{project}/dataset in MiB; larger gets 413")
	fs.Float64Var(&f.modelMB, "max-model-mb", float64(store.DefaultMaxModelBytes>>20),
		"largest classifier model uploaded to POST /v1/classifiers in MiB; larger gets 413")
}

// values returns the limits in bytes by setting name, for httpapi.Server.Limits.
func (f *routeLimitFlags) values() (map[string]int64, error) {
	out := map[string]int64{}
	for _, l := range []struct {
		setting string
		mb      float64
		zeroOK  bool
	}{{streams.PushSetting, f.pushMB, true}, {api.DatasetSetting, f.datasetMB, false}, {api.ModelSetting, f.modelMB, false}} {
		switch {
		case l.mb < 0 || (l.mb == 0 && !l.zeroOK):
			return nil, fmt.Errorf("%s %v: must be positive", l.setting, l.mb)
		case l.mb == 0:
			out[l.setting] = -1 // no limit
		default:
			out[l.setting] = int64(l.mb * (1 << 20))
		}
	}
	return out, nil
}
