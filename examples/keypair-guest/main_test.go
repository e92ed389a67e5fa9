package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/idstream/idstream/testenv"
)

func TestDeviceComesBackAsTheSameGuest(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	keyFile := filepath.Join(t.TempDir(), "device-key.json")
	first, err := run(context.Background(), http.DefaultClient, n.URL, "idstream-dev", keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !first.FirstUse || !first.IsAnonymous || first.Sub == "" {
		t.Fatalf("first run: %+v", first)
	}
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st.Mode(), err)
	}
	again, err := run(context.Background(), http.DefaultClient, n.URL, "idstream-dev", keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if again.FirstUse || again.Sub != first.Sub {
		t.Fatalf("second run: %+v, first %+v", again, first)
	}
}
