package geo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Reloader keeps the current DB behind an atomic pointer, so that lookups
// never wait for a reload and a reload never changes a DB under a lookup.
// geoipupdate replaces a file by writing a temporary file and renaming it
// over the old one; Watch sees that rename and reloads. A file that fails to
// open (half written, damaged) leaves the previous DB in service.
type Reloader struct {
	resolve func() []string // the paths to open, asked again at every reload
	cur     atomic.Pointer[DB]
	mu      sync.Mutex // serialises reloads
	// OnReload, if set, is told about every reload attempt: the new DB (nil
	// when countries are off) or the error that kept the old one.
	OnReload func(*DB, error)
}

// NewReloader opens the databases resolve names. It fails like Open when an
// explicitly named file cannot be read; resolve returning nothing means
// GeoIP is off (Current returns nil) until a reload finds files.
func NewReloader(resolve func() []string) (*Reloader, error) {
	r := &Reloader{resolve: resolve}
	if paths := resolve(); len(paths) > 0 {
		db, err := Open(paths)
		if err != nil {
			return nil, err
		}
		r.cur.Store(db)
	}
	return r, nil
}

// Current is the DB in service; nil when there is none.
func (r *Reloader) Current() *DB { return r.cur.Load() }

// Reload opens the files again and swaps them in. On error the previous DB
// stays in service.
func (r *Reloader) Reload() (*DB, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	paths := r.resolve()
	var db *DB
	var err error
	if len(paths) > 0 {
		db, err = Open(paths)
	}
	if err == nil {
		r.cur.Store(db)
	}
	if r.OnReload != nil {
		r.OnReload(db, err)
	}
	return db, err
}

// settle is how long Watch waits after the last change in a directory
// before reloading, so that a burst (geoipupdate writing several files) is
// one reload and a file still being written is not opened half done.
const settle = 500 * time.Millisecond

// Watch reloads whenever a file in the directories of the current paths is
// created, renamed into place or finished being written, until ctx is done.
// It uses inotify directly: the directories are watched, not the files,
// because a rename replaces the file a file watch would follow.
func (r *Reloader) Watch(ctx context.Context, dirs []string) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("geoip watch: %w", err)
	}
	file := os.NewFile(uintptr(fd), "inotify")
	defer file.Close()
	watched := 0
	for _, d := range dirs {
		if _, err := unix.InotifyAddWatch(fd, d, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_CREATE|unix.IN_DELETE); err == nil {
			watched++
		}
	}
	if watched == 0 {
		return errors.New("geoip watch: no directory could be watched")
	}
	events := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			// The fd is non-blocking and registered with Go's poller, so
			// Read parks the goroutine; closing the file ends it.
			if _, err := file.Read(buf); err != nil {
				return
			}
			select {
			case events <- struct{}{}:
			default:
			}
		}
	}()
	settled(ctx, events, settle, func() { r.Reload() })
	return nil
}

// settled calls reload once d has passed without an event since the last
// one, until ctx is done: a burst of events is one reload.
func settled(ctx context.Context, events <-chan struct{}, d time.Duration, reload func()) {
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-events:
			timer = time.After(d)
		case <-timer:
			timer = nil
			reload()
		}
	}
}

// Dirs returns the distinct directories holding paths, for Watch.
func Dirs(paths []string) []string {
	var dirs []string
	for _, p := range paths {
		if d := filepath.Dir(p); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// DefaultDirs are the directories DefaultPaths searches.
func DefaultDirs() []string { return slices.Clone(defaultDirs) }
