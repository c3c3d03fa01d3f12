package api

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
)

// The month benchmarks of the daemon's side: /v1/aggregate over the month
// that storage's BenchmarkMonthSize builds, asked what query's
// BenchmarkAnswerMonth* ask ("this month" at 17:43:40 on the 30th), through
// a real unix socket and the client the CLI uses:
//
//	DSTWATCH_BENCH_DB=/tmp/m.db go test -run XXX -bench BenchmarkMonthSize -benchtime 1x ./storage
//	DSTWATCH_BENCH_DB=/tmp/m.db go test -run XXX -bench BenchmarkAggregateMonth ./api

// monthSource is the daemon's App as the API sees it: the database's
// reader and a status.
type monthSource struct{ query.Reader }

func (monthSource) Status() (Status, error) { return Status{}, nil }

func benchAggregateMonth(b *testing.B, q query.Question) {
	path := os.Getenv("DSTWATCH_BENCH_DB")
	if path == "" {
		b.Skip("DSTWATCH_BENCH_DB is not set: build the month with storage's BenchmarkMonthSize first")
	}
	if _, err := os.Stat(path); err != nil {
		b.Skipf("DSTWATCH_BENCH_DB: %v: build the month with storage's BenchmarkMonthSize first", err)
	}
	db, err := storage.Open(path, storage.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := New(monthSource{query.Local(db)}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	sock := filepath.Join(b.TempDir(), "api.sock")
	l, err := Listen(sock, "")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(l)
	defer s.Shutdown(context.Background())
	c := NewClient(sock)
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	r := query.Range{From: start.Add(7*time.Minute + 20*time.Second), To: start.Add(29*24*time.Hour + 17*time.Hour + 43*time.Minute + 40*time.Second)}
	b.ReportAllocs()
	var rows []query.Row
	var sum query.Summary
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for b.Loop() {
		if rows, sum, err = c.Aggregate(context.Background(), r, q); err != nil {
			b.Fatal(err)
		}
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := ru.Utime.Nano() + ru.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op") // server and client: one process
	b.ReportMetric(float64(sum.Units()), "units")
	b.ReportMetric(float64(len(rows)), "rows")
}

// BenchmarkAggregateMonthByCountry: `dstwatch query --by country` this
// month, through the daemon.
func BenchmarkAggregateMonthByCountry(b *testing.B) {
	benchAggregateMonth(b, query.Question{By: query.ByCountry, Sort: query.SortBytes})
}

// BenchmarkAggregateMonthByRemoteTop20: `dstwatch query --by remote --top
// 20` this month, through the daemon.
func BenchmarkAggregateMonthByRemoteTop20(b *testing.B) {
	benchAggregateMonth(b, query.Question{By: query.ByRemote, Sort: query.SortBytes, Top: 20})
}
