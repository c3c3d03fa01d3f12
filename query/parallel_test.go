package query

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

var pday0 = time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC)

// parallelDB is four days of windows in a real file: raw windows for the
// last days, hourly and daily rollups (capped, so some remotes are folded
// into other) for all of them; remotes whose country changes on the third
// day, ASNs with and without an organisation, counts small enough to tie;
// one damaged raw window and one damaged hourly rollup.
func parallelDB(t *testing.T) *storage.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.db")
	db, err := storage.Open(path, storage.Options{HourCap: 60, DayCap: 150})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	pool := make([]window.Remote, 400)
	for i := range pool {
		a := netip.AddrFrom4([4]byte{198, 51, 100 + byte(i/250), byte(i)})
		if i%3 == 0 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		}
		r := window.Remote{Addr: a, Country: []string{"DE", "US", "NL", "", "AT", "FR"}[i%6], ASN: uint32(64500 + i%23)}
		if i%11 == 0 {
			r.ASN = 0
		}
		if r.ASN%4 != 0 && r.ASN != 0 {
			r.ASOrg = fmt.Sprintf("Org %d", r.ASN)
		}
		pool[i] = r
	}
	var ws []*window.Window
	for at := pday0.Add(7*time.Minute + 20*time.Second); at.Before(pday0.Add(4 * 24 * time.Hour)); at = at.Add(20 * time.Second) {
		if rng.IntN(100) < 60 {
			continue
		}
		w := &window.Window{Start: at, Length: 20 * time.Second,
			Stats: window.Stats{Frames: rng.Uint64N(1000), Tallied: rng.Uint64N(900), Drops: rng.Uint64N(2), Folded: rng.Uint64N(2)}}
		if rng.IntN(10) == 0 {
			w.Stats.Partial = window.Partial(1 << rng.IntN(3))
		}
		if rng.IntN(4) == 0 {
			w.Other = window.Counts{TxPackets: rng.Uint64N(3), TxBytes: rng.Uint64N(300)}
		}
		seen := map[int]bool{}
		for range rng.IntN(30) {
			i := rng.IntN(len(pool))
			if seen[i] {
				continue
			}
			seen[i] = true
			r := pool[i]
			if i%7 == 0 && at.After(pday0.Add(50*time.Hour)) {
				r.Country = "BE" // GeoIP changed its mind
			}
			// Few distinct counts, so that rows tie and are ordered by key.
			r.Counts = window.Counts{TxPackets: rng.Uint64N(4), TxBytes: 100 * rng.Uint64N(4), RxPackets: rng.Uint64N(3), RxBytes: 10 * rng.Uint64N(3)}
			if r.Counts.IsZero() {
				r.RxPackets, r.RxBytes = 1, 10
			}
			w.Remotes = append(w.Remotes, r)
		}
		ws = append(ws, w)
	}
	for i := 0; i < len(ws); {
		n := min(1+rng.IntN(400), len(ws)-i)
		if err := db.Put(ws[i : i+n]); err != nil {
			t.Fatal(err)
		}
		i += n
	}
	// Raw windows of the first day and a half are gone: those edges are
	// answered by rollups.
	if _, err := db.PruneTiers(ws[len(ws)-1].Start, storage.Retention{Windows: 60 * time.Hour, Hours: 30 * 24 * time.Hour, Days: 365 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	first, _, _, err := db.Bounds()
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	bad := []struct {
		bucket string
		at     time.Time
	}{{"windows", first.Add(10 * time.Hour)}, {"hours", pday0.Add(30 * time.Hour)}}
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, d := range bad {
			c := tx.Bucket([]byte(d.bucket)).Cursor()
			k, _ := c.Seek(binary.BigEndian.AppendUint64(nil, uint64(d.at.Unix())))
			if k == nil {
				return fmt.Errorf("nothing in %s after %s", d.bucket, d.at)
			}
			if err := tx.Bucket([]byte(d.bucket)).Put(k, []byte{1, 99}); err != nil {
				return err
			}
		}
		return nil
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	if db, err = storage.Open(path, storage.Options{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// answerAs answers with one aggregator (workers 1), workers merged, or
// as Answer chooses (workers 0), as bytes: rows and summary, or the error.
func answerAs(ctx context.Context, db *storage.DB, from, to time.Time, q Question, workers int) string {
	var rows []Row
	var sum Summary
	var err error
	switch workers {
	case 0:
		rows, sum, err = Answer(ctx, db, Range{From: from, To: to}, q)
	case 1:
		defer func(n int) { maxWorkers = n }(maxWorkers)
		maxWorkers = 1
		rows, sum, err = Answer(ctx, db, Range{From: from, To: to}, q)
	default:
		rows, sum, err = answerParallel(ctx, db, from, to, q, workers)
	}
	if err != nil {
		return "error: " + err.Error()
	}
	b, err := json.Marshal(struct {
		Rows []Row
		Sum  Summary
	}{rows, sum})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestParallelAnswerIsSerial: answers added up by several workers and
// merged are byte for byte those of one aggregator, for every grouping
// but periods, over ranges with rollups, raw edges, damaged units and
// pruned raw windows.
func TestParallelAnswerIsSerial(t *testing.T) {
	db := parallelDB(t)
	rng := rand.New(rand.NewPCG(5, 6))
	at := func() time.Time {
		t := pday0.Add(-time.Hour).Add(time.Duration(rng.Int64N(int64(98 * time.Hour))))
		switch rng.IntN(4) {
		case 0:
			return t.Truncate(24 * time.Hour)
		case 1:
			return t.Truncate(time.Hour)
		case 2:
			return t.Truncate(20 * time.Second)
		}
		return t
	}
	ranges := [][2]time.Time{
		{pday0, pday0.Add(4 * 24 * time.Hour)},
		{pday0.Add(7*time.Minute + 20*time.Second), pday0.Add(3*24*time.Hour + 17*time.Hour + 43*time.Minute + 40*time.Second)},
	}
	for range 12 {
		a, b := at(), at()
		if b.Before(a) {
			a, b = b, a
		}
		ranges = append(ranges, [2]time.Time{a, b})
	}
	filters := []Filter{{}, {Direction: Tx}, {Countries: []string{"be", "--"}}, {Remotes: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}, Direction: Rx}}
	var units, damaged, rolled int
	for _, by := range []By{ByRemote, ByCountry, ByASN, ByPrefix} {
		for _, f := range filters {
			for _, top := range []int{0, 3} {
				q := Question{By: by, Filter: f, Sort: []Sort{SortBytes, SortPackets}[top%2], Top: top, Prefix4: 31}
				for _, r := range ranges {
					want := answerAs(context.Background(), db, r[0], r[1], q, 1)
					for _, n := range []int{2, 3, 7} {
						if got := answerAs(context.Background(), db, r[0], r[1], q, n); got != want {
							t.Fatalf("%+v over %v..%v, %d workers:\n got %s\nwant %s", q, r[0], r[1], n, got, want)
						}
					}
					if got := answerAs(context.Background(), db, r[0], r[1], q, 0); got != want {
						t.Fatalf("%+v over %v..%v, Answer:\n got %s\nwant %s", q, r[0], r[1], got, want)
					}
					if by != ByPrefix {
						rows, _, err := Answer(context.Background(), db, Range{From: r[0], To: r[1]}, q)
						if err != nil {
							t.Fatal(err)
						}
						got, _ := json.Marshal(rows)
						if want, _ := json.Marshal(plainRows(t, db, r[0], r[1], q)); string(got) != string(want) {
							t.Fatalf("%+v over %v..%v: rows\n%s\nadded up with plain maps:\n%s", q, r[0], r[1], got, want)
						}
					}
					if by == ByRemote && f.IsZero() && top == 0 {
						_, sum, err := Answer(context.Background(), db, Range{From: r[0], To: r[1]}, q)
						if err != nil {
							t.Fatal(err)
						}
						units += sum.Units()
						damaged += len(sum.Damaged)
						if sum.Rollups() && sum.Windows > 0 {
							rolled++
						}
					}
				}
			}
		}
	}
	// The ranges must have met what the test is about.
	if units < 500 || damaged == 0 || rolled < 3 {
		t.Errorf("the ranges read %d units, %d damaged, %d with rollups and raw windows: not the mix this test needs", units, damaged, rolled)
	}
}

// plainRows is what Answer's rows must be, added up with plain maps:
// newest answers win, distinct remotes are distinct addresses.
func plainRows(t *testing.T, db *storage.DB, from, to time.Time, q Question) []Row {
	t.Helper()
	rows := map[string]*Row{}
	seen := map[string]map[netip.Addr]bool{}
	var other *Row
	_, err := db.SpanWith(context.Background(), from, to, storage.SpanOptions{}, func(w *window.Window) error {
		w = q.Filter.Apply(w)
		for _, r := range w.Remotes {
			var k string
			switch q.By {
			case ByRemote:
				k = r.Addr.String()
			case ByCountry:
				k = r.Country
			case ByASN:
				k = strconv.FormatUint(uint64(r.ASN), 10)
			}
			row := rows[k]
			if row == nil {
				row = &Row{Key: k}
				rows[k], seen[k] = row, map[netip.Addr]bool{}
			}
			row.Counts.Add(r.Counts)
			switch q.By {
			case ByRemote:
				row.Addr, row.Country, row.ASN, row.ASOrg = r.Addr, r.Country, r.ASN, r.ASOrg
			case ByCountry:
				row.Country = r.Country
			case ByASN:
				row.ASN = r.ASN
				if r.ASOrg != "" {
					row.ASOrg = r.ASOrg
				}
			}
			if q.By != ByRemote && !seen[k][r.Addr] {
				seen[k][r.Addr] = true
				row.Remotes++
			}
		}
		if !w.Other.IsZero() {
			if other == nil {
				other = &Row{Key: OtherKey}
			}
			other.Counts.Add(w.Other)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []Row
	for _, r := range rows {
		out = append(out, *r)
	}
	if other != nil {
		out = append(out, *other)
	}
	SortRows(out, q.Sort)
	return Top(out, q.Top)
}

// TestParallelAnswerCancelled: a context that ends stops a parallel
// answer with its error, as it stops a serial one, whether it is done from
// the start or part way.
func TestParallelAnswerCancelled(t *testing.T) {
	db := parallelDB(t)
	from, to := pday0, pday0.Add(4*24*time.Hour)
	_, sum, err := Answer(context.Background(), db, Range{From: from, To: to}, Question{By: ByCountry})
	if err != nil {
		t.Fatal(err)
	}
	for _, after := range []int64{0, 1, 40, int64(sum.Units() - 2)} {
		for _, n := range []int{1, 2, 3} {
			ctx := &endsAfter{Context: context.Background(), after: after}
			got := answerAs(ctx, db, from, to, Question{By: ByCountry}, n)
			if want := "error: " + context.Canceled.Error(); got != want {
				t.Errorf("cancelled after %d looks, %d workers: %.80s, want %s", after, n, got, want)
			}
		}
	}
}

// endsAfter is a context that is cancelled once its Err was asked after
// times: the span asks before each unit and window, so it ends part way.
type endsAfter struct {
	context.Context
	calls atomic.Int64
	after int64
}

func (c *endsAfter) Err() error {
	if c.calls.Add(1) > c.after {
		return context.Canceled
	}
	return nil
}
