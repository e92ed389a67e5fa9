package lazyfs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idstream/idstream/testenv/lazyfs"
)

func mount(t *testing.T, opts lazyfs.Options) *lazyfs.FS {
	t.Helper()
	if err := lazyfs.Available(); err != nil {
		t.Skipf("power-loss filesystem needs FUSE as root: %v", err)
	}
	f, err := lazyfs.New(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func write(t *testing.T, path, data string, flags int, sync bool) {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|flags, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if _, err := fd.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fd.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func cycle(t *testing.T, f *lazyfs.FS) lazyfs.Stats {
	t.Helper()
	st, err := f.PowerCycle()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func content(t *testing.T, path string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

func want(t *testing.T, path, data string) {
	t.Helper()
	got, ok := content(t, path)
	if !ok {
		t.Fatalf("%s: gone after the power cut, want %q", filepath.Base(path), data)
	}
	if got != data {
		t.Fatalf("%s: %q after the power cut, want %q", filepath.Base(path), got, data)
	}
}

func gone(t *testing.T, path string) {
	t.Helper()
	if got, ok := content(t, path); ok {
		t.Fatalf("%s: still there after the power cut (%q)", filepath.Base(path), got)
	}
}

func TestUnsyncedDataAndEntriesAreLost(t *testing.T) {
	f := mount(t, lazyfs.Options{})
	d := f.Dir()
	write(t, filepath.Join(d, "synced"), "one", 0, true)
	write(t, filepath.Join(d, "unsynced"), "two", 0, false)
	write(t, filepath.Join(d, "synced"), "+more", os.O_APPEND, false)
	if err := os.Mkdir(filepath.Join(d, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	st := cycle(t, f)
	if st.UnsyncedFiles == 0 || st.UnsyncedDirOps == 0 {
		t.Fatalf("stats at the cut: %+v, want unsynced files and directory operations", st)
	}
	// Fsync of a file makes its data and its entry durable (LazyFS).
	want(t, filepath.Join(d, "synced"), "one")
	gone(t, filepath.Join(d, "unsynced"))
	gone(t, filepath.Join(d, "sub"))
	// What is there now survives the next cut without any sync.
	cycle(t, f)
	want(t, filepath.Join(d, "synced"), "one")
}

func TestDirectorySyncMakesEntriesDurable(t *testing.T) {
	f := mount(t, lazyfs.Options{})
	d := f.Dir()
	write(t, filepath.Join(d, "a"), "A", 0, true)
	write(t, filepath.Join(d, "b"), "B", 0, true)
	write(t, filepath.Join(d, "empty"), "data not synced", 0, false)
	if err := os.Mkdir(filepath.Join(d, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	syncDir(t, d)
	cycle(t, f)
	want(t, filepath.Join(d, "empty"), "") // the entry, not the data
	if fi, err := os.Stat(filepath.Join(d, "sub")); err != nil || !fi.IsDir() {
		t.Fatalf("synced mkdir lost: %v", err)
	}

	// Rename and unlink without a directory sync are undone...
	if err := os.Rename(filepath.Join(d, "a"), filepath.Join(d, "a2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(d, "b")); err != nil {
		t.Fatal(err)
	}
	cycle(t, f)
	want(t, filepath.Join(d, "a"), "A")
	gone(t, filepath.Join(d, "a2"))
	want(t, filepath.Join(d, "b"), "B")

	// ... and kept with one.
	if err := os.Rename(filepath.Join(d, "a"), filepath.Join(d, "a2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(d, "b")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, d)
	cycle(t, f)
	gone(t, filepath.Join(d, "a"))
	want(t, filepath.Join(d, "a2"), "A")
	gone(t, filepath.Join(d, "b"))
}

// nats-server's atomic replace: write a temporary file with O_SYNC, rename it
// over the old one, sync the directory.
func TestAtomicReplace(t *testing.T) {
	f := mount(t, lazyfs.Options{})
	d := f.Dir()
	write(t, filepath.Join(d, "index"), "v1", 0, true)
	write(t, filepath.Join(d, "index.tmp"), "v2", os.O_SYNC|os.O_TRUNC, false)
	if err := os.Rename(filepath.Join(d, "index.tmp"), filepath.Join(d, "index")); err != nil {
		t.Fatal(err)
	}
	cycle(t, f)
	want(t, filepath.Join(d, "index"), "v1") // the rename was not synced
	want(t, filepath.Join(d, "index.tmp"), "v2")

	write(t, filepath.Join(d, "index.tmp"), "v3", os.O_SYNC|os.O_TRUNC, false)
	if err := os.Rename(filepath.Join(d, "index.tmp"), filepath.Join(d, "index")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, d)
	cycle(t, f)
	want(t, filepath.Join(d, "index"), "v3")
	gone(t, filepath.Join(d, "index.tmp"))
}

func TestPartialSyncsAndTruncation(t *testing.T) {
	f := mount(t, lazyfs.Options{})
	p := filepath.Join(f.Dir(), "log")
	big := strings.Repeat("x", 200_000)
	write(t, p, big, 0, true)
	write(t, p, "tail", os.O_APPEND, false)
	cycle(t, f)
	want(t, p, big)
	if err := os.Truncate(p, 10); err != nil {
		t.Fatal(err)
	}
	write(t, p, "yy", os.O_APPEND, true)
	cycle(t, f)
	want(t, p, big[:10]+"yy")
}

func TestCutStopsEverything(t *testing.T) {
	f := mount(t, lazyfs.Options{CutOnWrite: func(path string, _ []byte) bool { return strings.HasSuffix(path, "trigger") }})
	d := f.Dir()
	write(t, filepath.Join(d, "before"), "kept", 0, true)
	fd, err := os.Create(filepath.Join(d, "trigger"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.WriteString("boom"); err == nil {
		t.Fatal("the write that cut the power succeeded")
	}
	fd.Close()
	if !f.Off() {
		t.Fatal("power still on")
	}
	if err := os.WriteFile(filepath.Join(d, "after"), []byte("x"), 0o644); err == nil {
		t.Fatal("a write after the cut succeeded")
	}
	cycle(t, f)
	want(t, filepath.Join(d, "before"), "kept")
	gone(t, filepath.Join(d, "trigger"))
	gone(t, filepath.Join(d, "after"))
	if f.Off() {
		t.Fatal("power still off after the remount")
	}
	var buf bytes.Buffer
	buf.WriteString("fine again")
	write(t, filepath.Join(d, "after"), buf.String(), 0, true)
	want(t, filepath.Join(d, "after"), "fine again")
}

// With Writeback, a file's unsynced data outlives the cut (the kernel wrote
// it back in time); others' does not, and neither do unsynced entries.
func TestWriteback(t *testing.T) {
	f := mount(t, lazyfs.Options{Writeback: func(path string) bool { return path == "kept" }})
	d := f.Dir()
	write(t, filepath.Join(d, "kept"), "synced", 0, true)
	write(t, filepath.Join(d, "dropped"), "synced", 0, true)
	write(t, filepath.Join(d, "kept"), "+unsynced", os.O_APPEND, false)
	write(t, filepath.Join(d, "dropped"), "+unsynced", os.O_APPEND, false)
	write(t, filepath.Join(d, "new"), "unsynced", 0, false)
	if st := cycle(t, f); st.WrittenBack != 1 {
		t.Fatalf("stats %+v, want one file written back", st)
	}
	want(t, filepath.Join(d, "kept"), "synced+unsynced")
	want(t, filepath.Join(d, "dropped"), "synced")
	gone(t, filepath.Join(d, "new"))
}
