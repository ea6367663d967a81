package cli

import (
	"crypto/rand"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/vigil-video/vigil/ingest/streams"
)

// registerPolicy registers the flags of the source policy applied to streams created through
// /v1/streams and vigil.control.streams (streams.SourcePolicy; --source and --streams-file are
// not subject to it).
func (f *streamFlags) registerPolicy(fs *flag.FlagSet) {
	fs.Var((*stringList)(&f.policy.FileDirs), "stream-file-dirs", "directories whose files streams created through the API may read "+
		"(comma-separated absolute paths; default none: the API refuses local files)")
	fs.Var((*stringList)(&f.policy.AllowHosts), "stream-allow-hosts", "host names, IP addresses or CIDR prefixes API streams may read from although "+
		"they are loopback, link-local or otherwise refused, e.g. 127.0.0.1 for an RTSP server on this machine (comma-separated)")
	fs.BoolVar(&f.policy.AllowDevices, "stream-allow-devices", false, "let streams created through the API open this machine's cameras (device:N, /dev/videoN)")
	fs.BoolVar(&f.details, "stream-error-details", false, "show a failing source's own error (connection refused, RTSP status) in /v1/streams; "+
		"off, it says only that the source failed, so the API cannot probe what remote hosts answer (the log has the details either way)")
	fs.StringVar(&f.keyFile, "streams-key-file", "", "file holding the key (32 bytes, hex) that seals camera passwords in the stream list's bucket; "+
		"every ingest sharing the bucket needs the same one (default: ~/.config/vigil/streams.key, created when missing)")
	fs.Var((*stringList)(&f.policy.Schemes), "stream-schemes", "URL schemes API streams may use, some of rtsp,rtsps,http,https (default all four)")
}

// sealer loads the key that seals source URL passwords in the bucket: --streams-key-file, else
// the default file under the user's configuration directory, created when missing. Without a
// usable default it returns nil (passwords are then refused rather than stored in plaintext).
func (f *streamFlags) sealer(log *slog.Logger) (*streams.Sealer, error) {
	path, explicit := f.keyFile, f.keyFile != ""
	switch {
	case explicit:
	case f.runKeyTemp: // the bucket ends with this run: so may its key
		key := make([]byte, streams.KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("streams key: %w", err)
		}
		return streams.NewSealer(key)
	case f.runKey != "":
		path, explicit = f.runKey, true
	default:
		dir, err := os.UserConfigDir()
		if err != nil {
			log.Warn("streams: no key to seal camera passwords: streams with a password in their URL are refused (set --streams-key-file)", "err", err)
			return nil, nil
		}
		path = filepath.Join(dir, "vigil", "streams.key")
	}
	key, created, err := streams.LoadOrCreateKey(path, true)
	if err != nil {
		if explicit {
			return nil, err
		}
		log.Warn("streams: no key to seal camera passwords: streams with a password in their URL are refused (set --streams-key-file)", "err", err)
		return nil, nil
	}
	if created {
		log.Info("streams: created the key that seals camera passwords in the stream list; give every ingest sharing the bucket this file",
			"streams_key_file", path)
	}
	return streams.NewSealer(key)
}

// useRunStore makes vigil run's default streams key follow its JetStream store: a key file
// beside the data in --store-dir (persistent), or a key of this run only with a temporary store.
func (f *streamFlags) useRunStore(storeDir string, persistent bool) {
	if persistent {
		f.runKey = filepath.Join(storeDir, "streams.key")
	} else {
		f.runKeyTemp = true
	}
}
