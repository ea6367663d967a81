package httpapi

import (
	"fmt"
	"net/http"
)

// UploadSetting names the setting of Server.MaxUploadBytes, the limit of every route without
// one of its own, in 413 messages.
const UploadSetting = "--max-upload-mb"

// HandleUpload mounts h on pattern with a body limit of its own that setting changes: 413
// answers on this route name setting (e.g. "--max-push-mb"), and Server.Limits[setting], when
// present, replaces maxBytes (negative: none). An empty setting marks a fixed limit. Call it
// after filling Server.Limits and before Start.
func (s *Server) HandleUpload(pattern, setting string, maxBytes int64, h http.Handler) {
	maxBytes = s.UploadLimit(setting, maxBytes)
	s.HandleLimit(pattern, maxBytes, h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.settings == nil {
		s.settings = map[string]string{}
	}
	s.settings[pattern] = setting
}

// UploadLimit returns the body limit in bytes that setting has on this server: Limits[setting]
// when present, else def. Components use it to bound what they read the same way the server
// does.
func (s *Server) UploadLimit(setting string, def int64) int64 {
	if v, ok := s.Limits[setting]; ok && setting != "" {
		return v
	}
	return def
}

// RouteSetting returns the setting that changes the body limit in force for r (UploadSetting
// for routes without their own), or "" when that limit is fixed or r did not come through a
// Server.
func RouteSetting(r *http.Request) string {
	v, _ := r.Context().Value(ctxSetting{}).(string)
	return v
}

// WriteTooLarge writes the 413 body_too_large error for r's route: its limit and the setting
// that changes it.
func WriteTooLarge(w http.ResponseWriter, r *http.Request) {
	WriteLimitExceeded(w, MaxUpload(r), RouteSetting(r))
}

// WriteLimitExceeded writes the 413 body_too_large error for a body over limit bytes, naming
// the setting that changes the limit ("" for a fixed limit).
func WriteLimitExceeded(w http.ResponseWriter, limit int64, setting string) {
	how := "a fixed limit"
	if setting != "" {
		how = "server setting " + setting
	}
	WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large",
		fmt.Sprintf("the request body exceeds this route's limit of %s (%s)", formatBytes(limit), how))
}

// settingOf returns the setting of the route pattern that has a limit of its own: "" (fixed)
// unless HandleUpload named one. The caller holds s.mu.
func (s *Server) settingOf(pattern string) string {
	return s.settings[pattern]
}

type ctxSetting struct{}

// patternLimit is the body limit of the route mounted on pattern and its setting.
func (s *Server) patternLimit(pattern string) (int64, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.limits[pattern]; ok {
		return l, s.settingOf(pattern)
	}
	return s.MaxUploadBytes, UploadSetting
}
