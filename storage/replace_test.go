package storage

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// CompactInPlace leaves a smaller file with the same content and mode at
// the same path, and no copy; a file in use or a copy left behind is
// refused before anything is written.
func TestCompactInPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.db")
	db, err := Open(path, Options{Mode: 0o604})
	if err != nil {
		t.Fatal(err)
	}
	fillRandom(t, db, rand.New(rand.NewPCG(23, 24)), 2)
	if _, err := db.Prune(day0.Add(24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, db)

	called := false
	if _, err := CompactInPlace(path, func(string) { called = true }); !errors.Is(err, ErrLocked) || called {
		t.Errorf("in use: %v (started %v), want ErrLocked before the copy", err, called)
	}
	db.Close()
	tmp := path + CompactSuffix
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("a refused compact left a copy: %v", err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := CompactInPlace(path, nil); err == nil {
		t.Error("compacted over a copy left behind")
	}
	os.Remove(tmp)

	before, _ := os.Stat(path)
	var copyName string
	dropped, err := CompactInPlace(path, func(tmp string) { copyName = tmp })
	if err != nil || len(dropped) != 0 {
		t.Fatalf("CompactInPlace: %v, dropped %v", err, dropped)
	}
	if copyName != tmp {
		t.Errorf("started with %q, want %q", copyName, tmp)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size() >= before.Size() || after.Mode().Perm() != 0o604 {
		t.Errorf("%d bytes, mode %v after; want fewer than %d and 0604", after.Size(), after.Mode().Perm(), before.Size())
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("copy left behind: %v", err)
	}
	c, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := snapshot(t, c); !reflect.DeepEqual(got, want) {
		t.Error("compacted file differs")
	}

	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	if _, err := CompactInPlace(empty, nil); err == nil {
		t.Error("compacted an empty file")
	}
}
