// Package lazyfs is a FUSE filesystem for power-loss tests, after LazyFS
// (the filesystem Jepsen cuts the power with): it passes every operation
// through to a backing directory and keeps, beside it, the state a disk
// would have after a power cut, the durable image. A write reaches the image
// only when it is synced: a file's data by an fsync of the file (or a write
// through an O_SYNC/O_DSYNC descriptor); a creation, removal or rename of a
// directory entry by an fsync of that directory or, as in LazyFS, of a file
// in it. Cut turns the power off: from then on every change fails with EIO
// and the image no longer changes. Restore (after Unmount) replaces the
// backing directory with the image: what was not synced is gone.
//
// The model is the strict reading of POSIX, harsher than ext4 (whose fsync
// commits every pending metadata change of the filesystem): an unsynced
// rename or unlink is undone, an unsynced creation disappears, an unsynced
// write is cut back to the data last synced. Two leniencies: an entry made
// durable inside a directory whose own creation is not yet durable brings
// that directory along (as a journal commit would), and a write reaches the
// image whole or not at all (no torn sectors). Hard links, symlinks and
// copy_file_range are refused.
package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Options tune a filesystem.
type Options struct {
	// CutOnWrite, if set, is asked before each write with the file's path
	// relative to the mount and the data; when it answers true the power is
	// cut at that write, which fails like everything after it.
	CutOnWrite func(path string, data []byte) bool
	// Writeback, if set, is asked at the cut for each file holding
	// unsynced data: true means the kernel had written that data back
	// before the power went (it survives, though never synced), false that
	// it is lost (the default). The directory entries stay as synced.
	Writeback func(path string) bool
}

// FS is a mounted (or unmounted) lazy filesystem.
type FS struct {
	mnt, live, image string
	opts             Options

	mu      sync.Mutex
	off     bool
	pending []*dirOp
	dirty   map[uint64]*dirtyData
	stats   Stats
	server  *fuse.Server
}

// Stats count what the filesystem saw since it was mounted.
type Stats struct {
	Writes, FileSyncs, DirSyncs int
	// At a cut: directory operations and files with data not synced,
	// which Restore discards.
	UnsyncedDirOps, UnsyncedFiles int
	// WrittenBack counts the files whose unsynced data survived the cut
	// (Options.Writeback).
	WrittenBack int
}

type opKind int

const (
	opCreate opKind = iota
	opMkdir
	opUnlink
	opRmdir
	opRename
)

// dirOp is a change of directory entries not yet in the image, with the
// directories (relative paths) whose fsync makes it durable.
type dirOp struct {
	kind    opKind
	dir     string
	name    string
	toDir   string // rename
	toName  string
	done    bool
	fileIno uint64 // create: the new file
}

type span struct{ off, end int64 }

// dirtyData is what was written to a file since its last sync.
type dirtyData struct {
	spans []span
	path  string // where it was last written
}

func (d *dirtyData) add(off, end int64) {
	if n := len(d.spans); n > 0 {
		last := &d.spans[n-1]
		if off <= last.end && end >= last.off {
			last.off, last.end = min(last.off, off), max(last.end, end)
			return
		}
	}
	d.spans = append(d.spans, span{off, end})
}

// ErrNoFUSE means this machine cannot mount FUSE filesystems (no
// /dev/fuse, or not root).
var ErrNoFUSE = errors.New("lazyfs: FUSE is not available (needs /dev/fuse and root)")

// Available reports whether Mount can work here, and why not.
func Available() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("%w: %v", ErrNoFUSE, err)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: running as uid %d", ErrNoFUSE, os.Geteuid())
	}
	return nil
}

// New prepares a filesystem in work (an empty directory it owns) and mounts
// it; Dir is where.
func New(work string, opts Options) (*FS, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	f := &FS{mnt: filepath.Join(work, "mnt"), live: filepath.Join(work, "live"), image: filepath.Join(work, "image"), opts: opts}
	for _, d := range []string{f.mnt, f.live} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	return f, f.Mount()
}

// Dir is the mount point.
func (f *FS) Dir() string { return f.mnt }

// Mount mounts the backing directory, all of which counts as synced.
func (f *FS) Mount() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.server != nil {
		return errors.New("lazyfs: already mounted")
	}
	if err := os.RemoveAll(f.image); err != nil {
		return err
	}
	if err := copyTree(f.live, f.image); err != nil {
		return fmt.Errorf("lazyfs: durable image: %w", err)
	}
	f.off, f.pending, f.dirty, f.stats = false, nil, map[uint64]*dirtyData{}, Stats{}
	var st syscall.Stat_t
	if err := syscall.Stat(f.live, &st); err != nil {
		return err
	}
	root := &fs.LoopbackRoot{Path: f.live, Dev: uint64(st.Dev)}
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, lfs: f}
	}
	rn := root.NewNode(root, nil, "", &st)
	root.RootNode = rn
	zero := time.Duration(0)
	srv, err := fs.Mount(f.mnt, rn, &fs.Options{
		MountOptions: fuse.MountOptions{DirectMount: true, FsName: "lazyfs", Name: "lazyfs", DisableXAttrs: true},
		// No kernel caching of names or attributes: every lookup sees the
		// backing directory as it is.
		EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero,
	})
	if err != nil {
		return fmt.Errorf("lazyfs: mount %s: %w", f.mnt, err)
	}
	f.server = srv
	return nil
}

// Cut turns the power off: every later change fails with EIO and the
// durable image stays as it is. It returns false if the power was off
// already.
func (f *FS) Cut() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cutLocked()
}

func (f *FS) cutLocked() bool {
	if f.off {
		return false
	}
	f.off = true
	for _, op := range f.pending {
		if !op.done {
			f.stats.UnsyncedDirOps++
		}
	}
	for _, d := range f.dirty {
		if len(d.spans) == 0 {
			continue
		}
		f.stats.UnsyncedFiles++
		if f.opts.Writeback != nil && d.path != "" && f.opts.Writeback(d.path) {
			if _, err := os.Stat(f.img(d.path)); err == nil {
				_ = f.copyData(d.path, d)
				f.stats.WrittenBack++
			}
		}
	}
	return true
}

// Off reports whether the power has been cut. An acknowledgement a client
// receives while it is still on was given before the cut.
func (f *FS) Off() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.off
}

// Stats returns the counts since the last mount.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Unmount unmounts; the processes using the filesystem must be gone.
func (f *FS) Unmount() error {
	f.mu.Lock()
	srv := f.server
	f.server = nil
	f.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Unmount(); err != nil {
		// A process still holds a file: detach, so the test can go on.
		if derr := syscall.Unmount(f.mnt, syscall.MNT_DETACH); derr != nil {
			return fmt.Errorf("lazyfs: unmount: %v (detach: %v)", err, derr)
		}
	}
	return nil
}

// Restore replaces the backing directory with the durable image: what was
// not synced before the cut is gone. The filesystem must be unmounted.
func (f *FS) Restore() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.server != nil {
		return errors.New("lazyfs: restore while mounted")
	}
	f.cutLocked()
	if err := os.RemoveAll(f.live); err != nil {
		return err
	}
	return os.Rename(f.image, f.live)
}

// PowerCycle is Cut (if the power is on), Unmount, Restore and Mount; the
// processes using the filesystem must be gone (killed after the cut).
func (f *FS) PowerCycle() (Stats, error) {
	f.Cut()
	if err := f.Unmount(); err != nil {
		return Stats{}, err
	}
	st := f.Stats()
	if err := f.Restore(); err != nil {
		return st, err
	}
	return st, f.Mount()
}

// Close unmounts, leaving the directories.
func (f *FS) Close() error { return f.Unmount() }

// change is called, locked, before an operation that changes the backing
// directory: with the power off it fails.
func (f *FS) change() syscall.Errno {
	if f.off {
		return syscall.EIO
	}
	return 0
}

func (f *FS) record(op *dirOp) { f.pending = append(f.pending, op) }

// syncDir makes the pending changes of entries in dir durable, in order.
func (f *FS) syncDir(dir string) error {
	keep := f.pending[:0]
	var err error
	for _, op := range f.pending {
		if op.done {
			continue
		}
		if op.dir != dir && (op.kind != opRename || op.toDir != dir) {
			keep = append(keep, op)
			continue
		}
		op.done = true
		if e := f.apply(op); e != nil && err == nil {
			err = e
		}
	}
	f.pending = keep
	return err
}

func (f *FS) img(rel ...string) string { return filepath.Join(append([]string{f.image}, rel...)...) }

func (f *FS) apply(op *dirOp) error {
	p := f.img(op.dir, op.name)
	switch op.kind {
	case opCreate:
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		// The entry only: the data arrives when the file is synced.
		fd, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		return fd.Close()
	case opMkdir:
		return os.MkdirAll(p, 0o755)
	case opUnlink:
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	case opRmdir:
		return os.RemoveAll(p)
	case opRename:
		if _, err := os.Lstat(p); err != nil {
			// The source entry never became durable: neither does this.
			return nil
		}
		to := f.img(op.toDir, op.toName)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if fi, err := os.Lstat(to); err == nil && fi.IsDir() {
			if err := os.RemoveAll(to); err != nil {
				return err
			}
		}
		return os.Rename(p, to)
	}
	return nil
}

// syncFile makes a file's data, and the entries of its directory, durable.
func (f *FS) syncFile(rel string, ino uint64) error {
	if err := f.syncDir(filepath.Dir(rel)); err != nil {
		return err
	}
	d := f.dirty[ino]
	delete(f.dirty, ino)
	return f.copyData(rel, d)
}

// copyData copies the spans d of the file at rel to the image, and its size.
func (f *FS) copyData(rel string, d *dirtyData) error {
	src, err := os.Open(filepath.Join(f.live, rel))
	if err != nil {
		// Unlinked while open: nothing durable refers to it.
		return nil
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	dst := f.img(rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	size := fi.Size()
	if d != nil {
		buf := make([]byte, 1<<16)
		for _, s := range d.spans {
			for off := s.off; off < min(s.end, size); {
				n, err := src.ReadAt(buf[:min(int64(len(buf)), min(s.end, size)-off)], off)
				if n > 0 {
					if _, werr := out.WriteAt(buf[:n], off); werr != nil {
						return werr
					}
					off += int64(n)
				}
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				if n == 0 {
					break
				}
			}
		}
	}
	return out.Truncate(size)
}

func (f *FS) markDirty(ino uint64, rel string, off, end int64) {
	d := f.dirty[ino]
	if d == nil {
		d = &dirtyData{}
		f.dirty[ino] = d
	}
	d.path = rel
	d.add(off, end)
}

const toEnd = int64(1) << 62

// node is a file or directory of the mount.
type node struct {
	fs.LoopbackNode
	lfs *FS
}

var (
	_ fs.NodeCreater   = (*node)(nil)
	_ fs.NodeMkdirer   = (*node)(nil)
	_ fs.NodeMknoder   = (*node)(nil)
	_ fs.NodeUnlinker  = (*node)(nil)
	_ fs.NodeRmdirer   = (*node)(nil)
	_ fs.NodeRenamer   = (*node)(nil)
	_ fs.NodeOpener    = (*node)(nil)
	_ fs.NodeSetattrer = (*node)(nil)
	_ fs.NodeFsyncer   = (*node)(nil)
	_ fs.NodeLinker    = (*node)(nil)
	_ fs.NodeSymlinker = (*node)(nil)
)

func (n *node) rel() string {
	p := n.Path(nil)
	if p == "" {
		return "."
	}
	return p
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.change(); e != 0 {
		return nil, nil, 0, e
	}
	ch, fh, ff, e := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if e != 0 {
		return nil, nil, 0, e
	}
	ino := ch.StableAttr().Ino
	l.record(&dirOp{kind: opCreate, dir: n.rel(), name: name, fileIno: ino})
	// A new file (or one the creation truncated): all of it is unsynced.
	l.dirty[ino] = &dirtyData{spans: []span{{0, toEnd}}, path: filepath.Join(n.rel(), name)}
	return ch, &file{LoopbackFile: fh.(*fs.LoopbackFile), n: ch.Operations().(*node), sync: flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0}, ff, 0
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.change(); e != 0 {
		return nil, e
	}
	if mode&syscall.S_IFMT != syscall.S_IFREG && mode&syscall.S_IFMT != 0 {
		return nil, syscall.ENOTSUP
	}
	ch, e := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	if e == 0 {
		l.record(&dirOp{kind: opCreate, dir: n.rel(), name: name})
		l.dirty[ch.StableAttr().Ino] = &dirtyData{spans: []span{{0, toEnd}}, path: filepath.Join(n.rel(), name)}
	}
	return ch, e
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.change(); e != 0 {
		return nil, e
	}
	ch, e := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if e == 0 {
		l.record(&dirOp{kind: opMkdir, dir: n.rel(), name: name})
	}
	return ch, e
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.change(); e != 0 {
		return e
	}
	e := n.LoopbackNode.Unlink(ctx, name)
	if e == 0 {
		l.record(&dirOp{kind: opUnlink, dir: n.rel(), name: name})
	}
	return e
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.change(); e != 0 {
		return e
	}
	e := n.LoopbackNode.Rmdir(ctx, name)
	if e == 0 {
		l.record(&dirOp{kind: opRmdir, dir: n.rel(), name: name})
	}
	return e
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.change(); e != 0 {
		return e
	}
	const renameExchange = 2
	if flags&renameExchange != 0 {
		return syscall.ENOTSUP
	}
	to, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	e := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if e == 0 {
		l.record(&dirOp{kind: opRename, dir: n.rel(), name: name, toDir: to.rel(), toName: newName})
	}
	return e
}

// Links are not modelled.
func (n *node) Link(context.Context, fs.InodeEmbedder, string, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

func (n *node) Symlink(context.Context, string, string, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

func (n *node) CopyFileRange(context.Context, fs.FileHandle, uint64, *fs.Inode, fs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOTSUP
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	writes := flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0
	if writes {
		if e := l.change(); e != 0 {
			return nil, 0, e
		}
	}
	fh, ff, e := n.LoopbackNode.Open(ctx, flags)
	if e != 0 {
		return nil, 0, e
	}
	if flags&syscall.O_TRUNC != 0 {
		l.markDirty(n.StableAttr().Ino, n.rel(), 0, toEnd)
	}
	return &file{LoopbackFile: fh.(*fs.LoopbackFile), n: n, sync: flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0}, ff, 0
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.change(); e != 0 {
		return e
	}
	if fh, ok := f.(*file); ok {
		f = fh.LoopbackFile
	}
	e := n.LoopbackNode.Setattr(ctx, f, in, out)
	if sz, ok := in.GetSize(); ok && e == 0 {
		l.markDirty(n.StableAttr().Ino, n.rel(), int64(sz), toEnd)
	}
	return e
}

func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	l := n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.change(); e != 0 {
		return e
	}
	var err error
	if n.StableAttr().Mode&syscall.S_IFMT == syscall.S_IFDIR {
		l.stats.DirSyncs++
		err = l.syncDir(n.rel())
	} else {
		l.stats.FileSyncs++
		err = l.syncFile(n.rel(), n.StableAttr().Ino)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	return 0
}

// file is an open file of the mount.
type file struct {
	*fs.LoopbackFile
	n    *node
	sync bool // O_SYNC or O_DSYNC: each write is synced
}

var (
	_ fs.FileWriter          = (*file)(nil)
	_ fs.FileAllocater       = (*file)(nil)
	_ fs.FilePassthroughFder = (*file)(nil)
	_ fs.FileSetattrer       = (*file)(nil)
	_ fs.FileFsyncer         = (*file)(nil)
)

func (h *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	l := h.n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.change(); e != 0 {
		return 0, e
	}
	rel := h.n.rel()
	if l.opts.CutOnWrite != nil && l.opts.CutOnWrite(rel, data) {
		l.cutLocked()
		return 0, syscall.EIO
	}
	l.stats.Writes++
	n, e := h.LoopbackFile.Write(ctx, data, off)
	if n > 0 {
		l.markDirty(h.n.StableAttr().Ino, rel, off, off+int64(n))
	}
	if e == 0 && h.sync {
		if err := l.syncFile(rel, h.n.StableAttr().Ino); err != nil {
			return n, fs.ToErrno(err)
		}
	}
	return n, e
}

func (h *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	l := h.n.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.change(); e != 0 {
		return e
	}
	e := h.LoopbackFile.Allocate(ctx, off, size, mode)
	if e == 0 {
		l.markDirty(h.n.StableAttr().Ino, h.n.rel(), int64(off), int64(off+size))
	}
	return e
}

func (h *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return h.n.Setattr(ctx, h, in, out)
}

func (h *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return h.n.Fsync(ctx, h, flags)
}

// PassthroughFd refuses kernel passthrough: every write must come here.
func (h *file) PassthroughFd() (int, bool) { return 0, false }

// copyTree copies the regular files and directories under src to dst.
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(to, 0o755)
		case fi.Mode().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		default:
			return fmt.Errorf("%s: only files and directories are modelled", strings.TrimPrefix(p, src))
		}
	})
}

var _ fs.NodeOpendirHandler = (*node)(nil)

// OpendirHandle wraps the directory handle so that its fsync comes here.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, e := n.LoopbackNode.OpendirHandle(ctx, flags)
	if e != 0 {
		return nil, 0, e
	}
	return &dirHandle{inner: fh, n: n}, ff, 0
}

type dirHandle struct {
	inner fs.FileHandle
	n     *node
}

var (
	_ fs.FileReaddirenter = (*dirHandle)(nil)
	_ fs.FileSeekdirer    = (*dirHandle)(nil)
	_ fs.FileReleasedirer = (*dirHandle)(nil)
	_ fs.FileFsyncdirer   = (*dirHandle)(nil)
)

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.inner.(fs.FileReaddirenter).Readdirent(ctx)
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.inner.(fs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.inner.(fs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return d.n.Fsync(ctx, d, flags)
}
