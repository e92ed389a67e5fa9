package eventstore_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/idstream/idstream/eventstore"
)

func TestStartEmbeddedRequiresCredentials(t *testing.T) {
	if s, err := eventstore.StartEmbedded(eventstore.EmbeddedConfig{StoreDir: t.TempDir(), Port: -1}); err == nil {
		s.Shutdown()
		t.Fatal("started an embedded server that accepts anyone")
	}
	if s, err := eventstore.StartEmbedded(eventstore.EmbeddedConfig{StoreDir: t.TempDir(), Port: -1, UserNkeys: []string{"UNOTAKEY"}}); err == nil {
		s.Shutdown()
		t.Fatal("started with an invalid nkey")
	}
	kp, err := eventstore.EnsureUserKey(filepath.Join(t.TempDir(), "k.nk"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	if s, err := eventstore.StartEmbedded(eventstore.EmbeddedConfig{StoreDir: t.TempDir(), Port: -1, UserNkeys: []string{pub},
		Cluster: &eventstore.ClusterConfig{Name: "c", Port: -1}}); err == nil {
		s.Shutdown()
		t.Fatal("started a cluster whose routes anyone may join")
	}
	s, err := eventstore.StartEmbedded(eventstore.EmbeddedConfig{StoreDir: t.TempDir(), Port: -1, SyncAlways: true, UserNkeys: []string{pub}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if _, err := nats.Connect(s.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("without credentials: want an authorization violation, got %v", err)
	}
	opt, err := eventstore.UserKeyOption(kp)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.ClientURL(), opt)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

func TestUserKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "k.nk")
	if _, err := eventstore.LoadUserKey(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	kp, err := eventstore.EnsureUserKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Fatalf("new directory mode %04o, want 0700", di.Mode().Perm())
	}
	again, err := eventstore.EnsureUserKey(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := kp.PublicKey()
	b, _ := again.PublicKey()
	if a != b {
		t.Fatal("a second EnsureUserKey made a new key")
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		_ = os.Chmod(path, mode)
		if _, err := eventstore.EnsureUserKey(path); err == nil {
			t.Errorf("mode %04o accepted", mode)
		}
	}
	_ = os.Chmod(path, 0o600)
	if err := os.WriteFile(path, []byte("not a seed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := eventstore.LoadUserKey(path); err == nil {
		t.Error("a file without a seed accepted")
	}
}
