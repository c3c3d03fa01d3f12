// Command dstwatch answers, for a proxy or server host: where does this
// host's traffic go, how much of it, and to which countries?
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// DSTWATCH_CPUPROFILE=FILE writes a CPU profile of the whole run (for
	// scripts/bench and `go tool pprof`); not a flag, as users never need it.
	if path := os.Getenv("DSTWATCH_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = pprof.StartCPUProfile(f) // stopped (and flushed) before the exit below
		}
	}
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	pprof.StopCPUProfile()
	os.Exit(code)
}
