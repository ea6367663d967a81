package streams

import "github.com/vigil-video/vigil/pkg/admit"

// DefaultPushMaxBytes is Registry.PushMaxBytes's default: 10 MiB, the documented push limit.
const DefaultPushMaxBytes = 10 << 20

// PushSetting names the setting of the push route's body limit (httpapi.Server.Limits key,
// the --max-push-mb flag).
const PushSetting = "--max-push-mb"

// DefaultPushAdmission returns Registry.PushAdmission's default: 16 push bodies read or
// processed at once and 64 more waiting, over all streams (at most 80 x PushMaxBytes in memory).
func DefaultPushAdmission() *admit.Gate { return &admit.Gate{MaxConcurrent: 16, MaxWaiting: 64} }
