package reclog

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"
)

// Reading the record log as tail -F does: its last lines, then what is
// appended, across logrotate and truncation.

// LastLines writes f's last n lines to w and returns the offset it read
// to, where a Follow of f goes on.
func LastLines(w io.Writer, f *os.File, n int) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	start, err := lastLinesStart(f, size, n)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(w, io.NewSectionReader(f, start, size-start)); err != nil {
		return 0, err
	}
	return size, nil
}

// lastLinesStart finds where the last n lines of f's first size bytes
// begin, reading backwards. A newline at the very end ends the last line
// rather than starting an empty one.
func lastLinesStart(f io.ReaderAt, size int64, n int) (int64, error) {
	if n <= 0 {
		return size, nil
	}
	buf := make([]byte, 64<<10)
	count := 0
	for pos := size; pos > 0; {
		chunk := min(int64(len(buf)), pos)
		pos -= chunk
		if _, err := f.ReadAt(buf[:chunk], pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := chunk - 1; i >= 0; i-- {
			if buf[i] != '\n' || pos+i == size-1 {
				continue
			}
			if count++; count == n {
				return pos + i + 1, nil
			}
		}
	}
	return 0, nil
}

// A FollowEvent is a change of the followed file that Follow tells about.
type FollowEvent int

const (
	Truncated FollowEvent = iota + 1 // the file shrank: read again from its start
	Replaced                         // path names a new file: the old one was read to its end
)

// Follow writes what is appended to path from off on to w, polling every
// interval, until ctx is done. Like tail -F: when path names a new file
// (renamed away by logrotate), the old one is read to its end and the new
// one from its start; when the file shrinks (truncated), it is read from
// its start again. f may be nil when path does not exist yet; Follow
// closes it. notify, when not nil, is told of each truncation and
// replacement.
func Follow(ctx context.Context, path string, f *os.File, off int64, w io.Writer, interval time.Duration, notify func(FollowEvent)) error {
	if notify == nil {
		notify = func(FollowEvent) {}
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	buf := make([]byte, 64<<10)
	drain := func() error {
		for {
			k, err := f.ReadAt(buf, off)
			if k > 0 {
				if _, werr := w.Write(buf[:k]); werr != nil {
					return werr
				}
				off += int64(k)
			}
			if err != nil {
				return nil // io.EOF, or an error the next poll sees again
			}
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		var cur fs.FileInfo
		if f != nil {
			if err := drain(); err != nil {
				return err
			}
			var err error
			if cur, err = f.Stat(); err == nil && cur.Size() < off {
				notify(Truncated)
				off = 0
				continue
			}
		}
		if onDisk, err := os.Stat(path); err == nil && (f == nil || cur == nil || !os.SameFile(cur, onDisk)) {
			if nf, err := os.Open(path); err == nil {
				if f != nil {
					drain() // what the daemon wrote before it noticed the rotation
					f.Close()
					notify(Replaced)
				}
				f, off = nf, 0
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
