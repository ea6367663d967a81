package streams

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Passwords in source URLs (rtsp://user:PASSWORD@camera/...) are sealed before a KVStore writes
// them: anyone who can read the bucket (every NATS user with JetStream access) sees the URL with
// the password replaced by sealedPrefix and its AES-256-GCM ciphertext, bound to the stream name.
// Every ingest sharing the bucket needs the same key to open them.

// sealedPrefix starts a sealed password inside a stored source URL.
const sealedPrefix = "vigil-sealed-v1."

// KeySize is the length of a Sealer key in bytes.
const KeySize = 32

// ErrSealed: a stored password cannot be opened (no key, or another key than the one it was
// sealed with), or a password cannot be stored because there is no key.
var ErrSealed = errors.New("sealed source password")

// Sealer seals and opens the passwords of source URLs with one AES-256-GCM key.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a Sealer for a KeySize-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("streams: the key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("streams: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// LoadOrCreateKey reads a key file (KeySize bytes as hex, surrounding space ignored); with create,
// a missing file is created with a new random key, readable by its owner only. It reports
// whether it created the file.
func LoadOrCreateKey(path string, create bool) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) != KeySize {
			return nil, false, fmt.Errorf("streams key %s: want %d bytes as hex (openssl rand -hex %d)", path, KeySize, KeySize)
		}
		return key, false, nil
	}
	if !create || !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("streams key: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("streams key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("streams key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("streams key: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, false, fmt.Errorf("streams key: %w", werr)
	}
	return key, true, nil
}

// sealSource returns source with its URL password sealed (sources without a password are
// returned as they are). Without a Sealer a password is refused: it would be stored in plaintext.
func (s *Sealer) sealSource(name, source string) (string, error) {
	u, pw, ok := urlPassword(source)
	if !ok || strings.HasPrefix(pw, sealedPrefix) {
		return source, nil
	}
	if s == nil {
		return "", fmt.Errorf("%w: %w: stream %s: this ingest has no key to store the password of its source URL "+
			"(ingest setting --streams-key-file); it will not keep it in plaintext", ErrInvalid, ErrSealed, name)
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("streams: %w", err)
	}
	ct := s.aead.Seal(nonce, nonce, []byte(pw), []byte(name))
	u.User = url.UserPassword(u.User.Username(), sealedPrefix+base64.RawURLEncoding.EncodeToString(ct))
	return u.String(), nil
}

// openSource returns source with a sealed password opened.
func (s *Sealer) openSource(name, source string) (string, error) {
	u, pw, ok := urlPassword(source)
	if !ok || !strings.HasPrefix(pw, sealedPrefix) {
		return source, nil
	}
	if s == nil {
		return "", fmt.Errorf("%w: stream %s: the source's password is sealed and this ingest has no key (--streams-key-file)", ErrSealed, name)
	}
	ct, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(pw, sealedPrefix))
	if err != nil || len(ct) < s.aead.NonceSize() {
		return "", fmt.Errorf("%w: stream %s: malformed sealed password", ErrSealed, name)
	}
	plain, err := s.aead.Open(nil, ct[:s.aead.NonceSize()], ct[s.aead.NonceSize():], []byte(name))
	if err != nil {
		return "", fmt.Errorf("%w: stream %s: the source's password was sealed with another key than this ingest's (--streams-key-file)", ErrSealed, name)
	}
	u.User = url.UserPassword(u.User.Username(), string(plain))
	return u.String(), nil
}

// urlPassword parses source as a URL with a password.
func urlPassword(source string) (*url.URL, string, bool) {
	if !strings.Contains(source, "://") || !strings.Contains(source, "@") {
		return nil, "", false
	}
	u, err := url.Parse(source)
	if err != nil || u.User == nil {
		return nil, "", false
	}
	pw, ok := u.User.Password()
	return u, pw, ok
}
