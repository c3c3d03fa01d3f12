package geo

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
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
