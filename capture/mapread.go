package capture

import (
	"bufio"
	"io"
	"os"
	"runtime/debug"
	"syscall"
	"unsafe"
)

// recordSource is what the file reader parses from: a window of the file's
// next bytes that it consumes with Discard. *bufio.Reader is one; mapReader
// is the other.
type recordSource interface {
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	close() error
}

type bufSource struct{ *bufio.Reader }

func (bufSource) close() error { return nil }

// mapChunk is how much of a regular file is mapped at a time. Reading the
// file copies every byte of every frame into a buffer; a mapping hands the
// page cache's pages over instead, and the parser touches only the headers
// (measured on a 700 MB tmpfs file: 125 ms of CPU through read(2), 65 ms
// mapped, for any chunk from 1 to 64 MiB). A chunk, not the whole file, so
// that resident memory stays a few MiB whatever the file's size.
const mapChunk = 4 << 20

// mapReader serves Peek and Discard from a read-only mapping of part of a
// regular file, moved forward as the reader consumes it. The file is never
// written. Its size is looked at again for every chunk; if it shrinks while
// a chunk is mapped, what lies past the new end of that chunk's last page
// reads as zeros and the next page faults. File.Run turns that fault into
// an error (debug.SetPanicOnFault); the frames of the batch being read then
// are not counted, and zeros read before the fault may have been counted
// as malformed frames: the replay's numbers are not complete either way,
// and it ends with an error that says so.
type mapReader struct {
	f    *os.File
	size int64  // file size when last looked at
	base int64  // file offset of m[0], a multiple of the page size
	m    []byte // the mapping; nil before the first Peek and at the end
	pos  int64  // file offset of the next unread byte
}

// newSource maps f when it is a regular file that can be mapped, and reads
// it through a buffer otherwise (a pipe, a terminal, a file system that
// cannot map).
func newSource(f *os.File) recordSource {
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
		probe, err := syscall.Mmap(int(f.Fd()), 0, 1, syscall.PROT_READ, syscall.MAP_SHARED)
		if err == nil {
			syscall.Munmap(probe)
			return &mapReader{f: f, size: st.Size()}
		}
	}
	return bufSource{bufio.NewReaderSize(f, readBuffer)}
}

// Peek returns the next n bytes without consuming them, or fewer and io.EOF
// at the end of the file. The bytes are valid until the next Peek or
// Discard.
func (r *mapReader) Peek(n int) ([]byte, error) {
	end := r.pos + int64(n)
	if end > r.size {
		// The file may have grown since (a capture still being written):
		// read up to where it ends now, as read(2) would.
		if st, err := r.f.Stat(); err == nil && st.Size() > r.size {
			r.size = st.Size()
		}
	}
	if end > r.base+int64(len(r.m)) && r.base+int64(len(r.m)) < r.size {
		if err := r.remap(n); err != nil {
			return nil, err
		}
	}
	avail := r.base + int64(len(r.m)) - r.pos
	if avail < 0 {
		avail = 0
	}
	if int64(n) > avail {
		off := r.pos - r.base
		if avail == 0 {
			return nil, io.EOF
		}
		return r.m[off : off+avail : off+avail], io.EOF
	}
	off := r.pos - r.base
	return r.m[off : off+int64(n) : off+int64(n)], nil
}

// remap maps from the page holding pos, at least n bytes and a chunk, up
// to where the file ends now: a file cut short since the last chunk ends
// the read there, as read(2) would, instead of faulting.
func (r *mapReader) remap(n int) error {
	if r.m != nil {
		syscall.Munmap(r.m)
		r.m = nil
	}
	if st, err := r.f.Stat(); err == nil {
		r.size = st.Size()
	}
	page := int64(os.Getpagesize())
	r.base = r.pos &^ (page - 1)
	length := max(int64(mapChunk), r.pos-r.base+int64(n))
	length = min(length, r.size-r.base)
	if length <= 0 {
		return nil
	}
	m, err := syscall.Mmap(int(r.f.Fd()), r.base, int(length), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return &os.PathError{Op: "mmap", Path: r.f.Name(), Err: err}
	}
	// The parser reads each chunk once, front to back.
	syscall.Madvise(m, syscall.MADV_SEQUENTIAL)
	r.m = m
	return nil
}

// Discard consumes n bytes; past the end it consumes what is left and says
// io.EOF. Skipping needs no read, however large the skipped block.
func (r *mapReader) Discard(n int) (int, error) {
	if left := r.size - r.pos; int64(n) > left {
		if st, err := r.f.Stat(); err == nil && st.Size() > r.size {
			r.size = st.Size()
		}
		if left = r.size - r.pos; int64(n) > left {
			r.pos = r.size
			return int(left), io.EOF
		}
	}
	r.pos += int64(n)
	return n, nil
}

func (r *mapReader) close() error {
	if r.m != nil {
		err := syscall.Munmap(r.m)
		r.m = nil
		return err
	}
	return nil
}

// faultGuard makes a fault on a mapped page (the file was truncated under
// the reader) an error of f instead of a crash. Call as
// defer f.faultGuard(&err)() at the top of a function that reads the
// mapping on this goroutine.
func (f *File) faultGuard(err *error) func() {
	old := debug.SetPanicOnFault(true)
	return func() {
		debug.SetPanicOnFault(old)
		if p := recover(); p != nil {
			fault, ok := p.(interface{ Addr() uintptr })
			if !ok || !f.mapped(fault.Addr()) {
				panic(p) // not a page of the capture: a bug, not the file
			}
			*err = f.errorf("near offset %d: the file shrank while it was read: %w", f.off, ErrTruncated)
		}
	}
}

// mapped reports whether addr is in the file's current mapping.
func (f *File) mapped(addr uintptr) bool {
	r, ok := f.r.(*mapReader)
	if !ok || len(r.m) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(&r.m[0]))
	return addr >= start && addr < start+uintptr(len(r.m))
}
