package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// Components stop in reverse order of their start, and a start that fails
// stops what had started (only that) before it returns.
func TestStartAllOrder(t *testing.T) {
	var got []string
	part := func(name string, startErr, stopErr error) component {
		return component{name, func() (func() error, error) {
			got = append(got, "start "+name)
			if startErr != nil {
				return nil, startErr
			}
			return func() error { got = append(got, "stop "+name); return stopErr }, nil
		}}
	}
	noStop := component{"none", func() (func() error, error) { got = append(got, "start none"); return nil, nil }}
	errA, errC := errors.New("a failed to stop"), errors.New("c failed to stop")

	stop, err := startAll(slog.New(slog.DiscardHandler), []component{part("a", nil, errA), noStop, part("b", nil, nil), part("c", nil, errC)})
	if err != nil {
		t.Fatal(err)
	}
	err = stop()
	want := []string{"start a", "start none", "start b", "start c", "stop c", "stop b", "stop a"}
	if !slices.Equal(got, want) {
		t.Errorf("order %q, want %q", got, want)
	}
	if !errors.Is(err, errA) || !errors.Is(err, errC) {
		t.Errorf("stop error %v, want both stops' errors", err)
	}

	got = nil
	errB := errors.New("b failed to start")
	_, err = startAll(slog.New(slog.DiscardHandler), []component{part("a", nil, nil), part("b", errB, nil), part("c", nil, nil)})
	if !errors.Is(err, errB) {
		t.Errorf("start error %v, want %v", err, errB)
	}
	want = []string{"start a", "start b", "stop a"}
	if !slices.Equal(got, want) {
		t.Errorf("order after a failed start %q, want %q", got, want)
	}
}

// A listener's serve error is logged, not fatal, and its stop returns only
// once serve has returned.
func TestServeUntilStop(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	release := make(chan struct{})
	returned := false
	stop := serveUntilStop(log, "side door failed", func() error {
		<-release
		returned = true
		return errors.New("accept: too many open files")
	}, func() { close(release) })
	stop()
	if !returned {
		t.Fatal("stop returned before serve did")
	}
	if out := logged.String(); !strings.Contains(out, `msg="side door failed" err="accept: too many open files"`) {
		t.Errorf("log %q lacks the serve error", out)
	}

	logged.Reset()
	stop = serveUntilStop(log, "side door failed", func() error { return nil }, func() {})
	stop()
	if logged.Len() != 0 {
		t.Errorf("a clean serve logged %q", logged.String())
	}
}
