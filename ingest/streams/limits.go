package streams

// DefaultPushMaxBytes is Registry.PushMaxBytes's default: 10 MiB, the documented push limit.
const DefaultPushMaxBytes = 10 << 20

// PushSetting names the setting of the push route's body limit (httpapi.Server.Limits key,
// the --max-push-mb flag).
const PushSetting = "--max-push-mb"
