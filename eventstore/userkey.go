package eventstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// The embedded server's clients authenticate with an nkey: the server keeps
// only the public half, and the seed never crosses the connection (the
// client signs the server's nonce). The seed lives in a file beside the
// store, so that operator commands on the same data directory can connect.

// EnsureUserKey reads the nkey user seed at path, or, if there is none,
// makes one and writes it there with mode 0600.
func EnsureUserKey(path string) (nkeys.KeyPair, error) {
	kp, err := LoadUserKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return kp, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("eventstore: %w", err)
	}
	kp, err = nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("eventstore: new nkey: %w", err)
	}
	// Seed returns the key pair's own slice: copy it, never wipe it.
	seed, err := kp.Seed()
	if err != nil {
		return nil, err
	}
	line := append(append(make([]byte, 0, len(seed)+1), seed...), '\n')
	defer wipe(line)
	// O_EXCL: of two processes starting at once, one writes and the other
	// reads what it wrote.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadUserKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("eventstore: %w", err)
	}
	_, err = f.Write(line)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("eventstore: write %s: %w", path, err)
	}
	return kp, nil
}

// LoadUserKey reads the nkey user seed at path. A file that others than its
// owner may read or write is refused: the seed may have leaked.
func LoadUserKey(path string) (nkeys.KeyPair, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eventstore: NATS key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("eventstore: NATS key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("eventstore: NATS key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("eventstore: NATS key %s has mode %04o: it must be 0600 (chmod 600 it, or delete it to get a new key if others may have read it)", path, perm)
	}
	raw, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("eventstore: NATS key: %w", err)
	}
	defer wipe(raw)
	kp, err := nkeys.FromSeed(bytes.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("eventstore: NATS key %s holds no nkey seed (delete it to get a new key)", path)
	}
	if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("eventstore: NATS key %s is not a user nkey seed", path)
	}
	return kp, nil
}

// UserKeyOption makes a client connection authenticate with kp.
func UserKeyOption(kp nkeys.KeyPair) (nats.Option, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	return nats.Nkey(pub, kp.Sign), nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
