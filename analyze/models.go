package analyze

import (
	"errors"
	"fmt"
	"sync"

	"github.com/vigil-video/vigil/detect"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/onnx"
)

// ModelSet loads the manifest's models into onnxruntime sessions on first use, verifying each
// file's sha256 first, and owns those sessions. Its Get method is a Models function.
type ModelSet struct {
	rt       *onnx.Runtime
	manifest models.Manifest
	dir      string
	opts     onnx.SessionOptions

	mu       sync.Mutex
	sessions map[string]*onnx.Session
}

// NewModelSet serves models from depsDir (laid out by `make setup`) through rt.
func NewModelSet(rt *onnx.Runtime, m models.Manifest, depsDir string, opts onnx.SessionOptions) *ModelSet {
	return &ModelSet{rt: rt, manifest: m, dir: depsDir, opts: opts, sessions: map[string]*onnx.Session{}}
}

// Get returns the session for the manifest model name, loading it once.
func (s *ModelSet) Get(name string) (detect.Model, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.sessions[name]; ok {
		return sess, nil
	}
	data, err := s.manifest.ReadVerified(s.dir, name)
	if err != nil {
		return nil, err
	}
	sess, err := s.rt.NewSession(name, data, s.opts)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	s.sessions[name] = sess
	return sess, nil
}

// Close closes every loaded session.
func (s *ModelSet) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for name, sess := range s.sessions {
		if err := sess.Close(); err != nil {
			errs = append(errs, fmt.Errorf("model %s: %w", name, err))
		}
	}
	s.sessions = map[string]*onnx.Session{}
	return errors.Join(errs...)
}
