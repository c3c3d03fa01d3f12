package storage

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/window"
)

func pendingStarts(t *testing.T, db *DB) ([]time.Time, []uint64) {
	t.Helper()
	es, total, err := db.Pending(0)
	if err != nil {
		t.Fatal(err)
	}
	if total != len(es) {
		t.Fatalf("Pending total %d, entries %d", total, len(es))
	}
	var ts []time.Time
	var seqs []uint64
	for _, e := range es {
		ts, seqs = append(ts, e.Start), append(seqs, e.Seq)
	}
	return ts, seqs
}

// The outbox holds every window stored since it was enabled (and the ones
// before, once), in store order; a window merged again is pending again;
// Exported removes what was sent, and all of it survives a reopen.
func TestOutbox(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dstwatch.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Put([]*window.Window{sampleWindow(t0)}); err != nil {
		t.Fatal(err)
	}
	if ts, _ := pendingStarts(t, db); len(ts) != 0 {
		t.Fatalf("pending without an outbox: %v", ts)
	}
	created, err := db.EnableOutbox()
	if err != nil || !created {
		t.Fatalf("EnableOutbox = %v, %v", created, err)
	}
	if created, err := db.EnableOutbox(); err != nil || created {
		t.Fatalf("second EnableOutbox = %v, %v", created, err)
	}
	w1, w2 := t0.Add(20*time.Second), t0.Add(40*time.Second)
	if err := db.Put([]*window.Window{sampleWindow(w2), sampleWindow(w1)}); err != nil {
		t.Fatal(err)
	}
	ts, seqs := pendingStarts(t, db)
	if want := []time.Time{t0, w1, w2}; !equalTimes(ts, want) {
		t.Fatalf("pending %v, want %v", ts, want)
	}
	if err := db.Exported(seqs[1]); err != nil {
		t.Fatal(err)
	}
	if err := db.Put([]*window.Window{sampleWindow(t0)}); err != nil { // merged into an exported window
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ts, seqs2 := pendingStarts(t, db)
	if want := []time.Time{w2, t0}; !equalTimes(ts, want) {
		t.Fatalf("after reopen pending %v, want %v", ts, want)
	}
	if seqs2[0] != seqs[2] || seqs2[1] <= seqs[2] {
		t.Fatalf("sequences %v after %v: want the old one kept and a newer one", seqs2, seqs)
	}
	es, total, err := db.Pending(1)
	if err != nil || len(es) != 1 || total != 2 {
		t.Fatalf("Pending(1) = %v, %d, %v", es, total, err)
	}
}

// A prune that deletes a window still in the outbox drops its entry and
// says how many it dropped.
func TestOutboxPrune(t *testing.T) {
	db := openTemp(t)
	if _, err := db.EnableOutbox(); err != nil {
		t.Fatal(err)
	}
	old, recent := t0, t0.Add(5*time.Hour)
	if err := db.Put([]*window.Window{sampleWindow(old), sampleWindow(old.Add(20 * time.Second)), sampleWindow(recent)}); err != nil {
		t.Fatal(err)
	}
	p, err := db.PruneTiers(recent, Retention{Windows: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if p.Windows != 2 || p.Unexported != 2 {
		t.Fatalf("pruned %+v, want 2 windows, 2 of them unexported", p)
	}
	if ts, _ := pendingStarts(t, db); !equalTimes(ts, []time.Time{recent}) {
		t.Fatalf("pending %v after prune", ts)
	}
}

func equalTimes(a, b []time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
