package geo

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dstwatch/dstwatch/internal/mmdbtest"
)

// geoipupdate's way: write a temporary file, rename it over the old one.
func replaceByRename(t *testing.T, path string, entries map[string]string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := mmdbtest.Country(tmp, entries); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestWatchPicksUpRenamedDatabase(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "GeoLite2-Country.mmdb")
	if err := mmdbtest.Country(path, map[string]string{"203.0.113.0/24": "JP"}); err != nil {
		t.Fatal(err)
	}
	r, err := NewReloader(func() []string { return []string{path} })
	if err != nil {
		t.Fatal(err)
	}
	reloads := make(chan error, 10)
	r.OnReload = func(_ *DB, err error) { reloads <- err }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Watch(ctx, Dirs([]string{path})) }()
	time.Sleep(50 * time.Millisecond) // let the watch start

	a := netip.MustParseAddr("203.0.113.9")
	old := r.Current()
	if got := old.Lookup(a).Country; got != "JP" {
		t.Fatalf("before: %q", got)
	}
	replaceByRename(t, path, map[string]string{"203.0.113.0/24": "KR"})
	select {
	case err := <-reloads:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after the rename")
	}
	if got := r.Current().Lookup(a).Country; got != "KR" {
		t.Errorf("after the rename: %q, want KR", got)
	}
	if got := old.Lookup(a).Country; got != "JP" {
		t.Errorf("the old DB changed under its users: %q", got)
	}

	// A half-written file (garbage) keeps the previous DB in service.
	if err := os.WriteFile(path+".tmp", []byte("half a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reloads:
		if err == nil {
			t.Fatal("garbage file accepted")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reload attempt after the second rename")
	}
	if got := r.Current().Lookup(a).Country; got != "KR" {
		t.Errorf("a failed reload replaced the DB: %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestReloaderWithoutFiles(t *testing.T) {
	r, err := NewReloader(func() []string { return nil })
	if err != nil || r.Current() != nil {
		t.Fatalf("want GeoIP off, got %v %v", r.Current(), err)
	}
	if db, err := r.Reload(); db != nil || err != nil {
		t.Fatalf("reload with nothing to open: %v %v", db, err)
	}
}

// Reloads wait for a quiet settle period: a burst of changes (geoipupdate
// writing several files) is one reload, made settle after the last change,
// and a change after that is another. synctest's clock makes the waits
// exact and instant.
func TestSettledReloadsOncePerBurst(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		events := make(chan struct{})
		var mu sync.Mutex
		var at []time.Duration
		reloads := func() []time.Duration { mu.Lock(); defer mu.Unlock(); return slices.Clone(at) }
		start := time.Now()
		done := make(chan struct{})
		go func() {
			settled(ctx, events, settle, func() { mu.Lock(); at = append(at, time.Since(start)); mu.Unlock() })
			close(done)
		}()
		for range 5 { // a burst, 100 ms apart
			events <- struct{}{}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if r := reloads(); len(r) != 1 || r[0] != 400*time.Millisecond+settle {
			t.Fatalf("reloads at %v, want one at %v", r, 400*time.Millisecond+settle)
		}
		events <- struct{}{}
		time.Sleep(settle - time.Millisecond)
		synctest.Wait()
		if r := reloads(); len(r) != 1 {
			t.Fatalf("reloaded %v before the settle period was over", r)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if r := reloads(); len(r) != 2 {
			t.Fatalf("reloads at %v, want a second one", r)
		}
		cancel()
		<-done
	})
}
