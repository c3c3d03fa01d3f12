package query_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
)

// The month benchmarks read the month that storage's BenchmarkMonth* build
// (30 days of 20 s windows, 500 remotes each from a pool of 20,000):
//
//	DSTWATCH_BENCH_DB=/tmp/m.db go test -run XXX -bench BenchmarkMonthSize -benchtime 1x ./storage
//	DSTWATCH_BENCH_DB=/tmp/m.db go test -run XXX -bench BenchmarkAnswerMonth ./query
//
// and ask it what the daemon's /v1/aggregate and 'dstwatch query' ask:
// query.Answer over "this month" asked at 17:43:40 on the 30th.
var (
	benchMonthStart = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	benchMonthFrom  = benchMonthStart.Add(7*time.Minute + 20*time.Second)
	benchMonthTo    = benchMonthStart.Add(29*24*time.Hour + 17*time.Hour + 43*time.Minute + 40*time.Second)
)

func openBenchMonth(b *testing.B) *storage.DB {
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
	b.Cleanup(func() { db.Close() })
	return db
}

func benchAnswer(b *testing.B, q query.Question) {
	db := openBenchMonth(b)
	b.ReportAllocs()
	var rows []query.Row
	var sum query.Summary
	cpu0 := cpuTime(b)
	for b.Loop() {
		var err error
		if rows, sum, err = query.Answer(context.Background(), db, query.Range{From: benchMonthFrom, To: benchMonthTo}, q); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0)
	b.ReportMetric(float64(sum.Units()), "units")
	b.ReportMetric(float64(len(rows)), "rows")
}

// BenchmarkAnswerMonthByCountry: "top countries this month".
func BenchmarkAnswerMonthByCountry(b *testing.B) {
	benchAnswer(b, query.Question{By: query.ByCountry, Sort: query.SortBytes})
}

// BenchmarkAnswerMonthByRemoteTop20: "top 20 remotes this month".
func BenchmarkAnswerMonthByRemoteTop20(b *testing.B) {
	benchAnswer(b, query.Question{By: query.ByRemote, Sort: query.SortBytes, Top: 20})
}

// BenchmarkAnswerMonthByASN: "AS totals this month".
func BenchmarkAnswerMonthByASN(b *testing.B) {
	benchAnswer(b, query.Question{By: query.ByASN, Sort: query.SortBytes})
}

// BenchmarkAnswerMonthCountryFilter: "top 20 remotes in one country this
// month": the filter copies each unit's matching remotes.
func BenchmarkAnswerMonthCountryFilter(b *testing.B) {
	benchAnswer(b, query.Question{By: query.ByRemote, Sort: query.SortBytes, Top: 20, Filter: query.Filter{Countries: []string{"AT"}}})
}

// cpuTime is the CPU time the process has used, user and system, on all
// its threads: on a shared machine the wall time of an answer says as much
// about the other load as about the answer, its CPU time much less.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per answer since cpu0 (garbage collection
// included) as cpu-ns/op.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}
