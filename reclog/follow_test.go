package reclog

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 3, "a\nb\nc\n"},
		{"a\nb\nc\n", 10, "a\nb\nc\n"},
		{"a\nb\nc", 1, "c"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\n", 0, ""},
		{"", 5, ""},
		{"\n\n\n", 2, "\n\n"},
		{strings.Repeat("x", 100_000) + "\n" + strings.Repeat("y", 70_000) + "\n", 1, strings.Repeat("y", 70_000) + "\n"},
	} {
		path := filepath.Join(t.TempDir(), "log")
		os.WriteFile(path, []byte(tc.in), 0o644)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		off, err := LastLines(&out, f, tc.n)
		f.Close()
		if err != nil || out.String() != tc.want || off != int64(len(tc.in)) {
			t.Errorf("%.20q -n %d: %.20q at %d (%v), want %.20q", tc.in, tc.n, out.String(), off, err, tc.want)
		}
	}
}

// lockedBuffer is what Follow writes to while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Follow waits for a missing file, goes on across logrotate's rename and
// create (reading the old file to its end first) and across truncation,
// says which happened, and returns when ctx is done.
func TestFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.log")
	appendTo := func(p, s string) {
		t.Helper()
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	var out lockedBuffer
	var mu sync.Mutex
	var events []FollowEvent
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, path, nil, 0, &out, 5*time.Millisecond, func(e FollowEvent) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		})
	}()
	expect := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Second); out.String() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("followed %q, want %q", out.String(), want)
			}
		}
	}
	appendTo(path, "one\n")
	expect("one\n")
	appendTo(path, "two\n")
	expect("one\ntwo\n")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(path+".1", "three\n") // the writer has not noticed yet
	appendTo(path, "four\n")
	expect("one\ntwo\nthree\nfour\n")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	appendTo(path, "five\n")
	expect("one\ntwo\nthree\nfour\nfive\n")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Follow: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(events, []FollowEvent{Replaced, Truncated}) {
		t.Errorf("events %v, want replaced then truncated", events)
	}
}
