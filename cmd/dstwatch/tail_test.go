package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tail -f keeps following across logrotate's rename-and-create and across
// truncation, and waits for a file that does not exist yet.
func TestTailFollowsRotationAndTruncation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "records.log")
	out, errb, stop := runBackground(t, "tail", "-f", "--record-log", path, "-n", "1")
	appendTo := func(s string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	expect := func(s string) {
		t.Helper()
		if !waitFor(3*time.Second, func() bool { return strings.Contains(out.String(), s) }) {
			t.Fatalf("tail never printed %q; got:\n%s\nstderr:\n%s", s, out.String(), errb.String())
		}
	}
	time.Sleep(300 * time.Millisecond)
	appendTo("one\n") // the file appears
	expect("one\n")
	appendTo("two\n")
	expect("one\ntwo\n")

	// logrotate: rename away; the writer adds a last line to the old file,
	// then a new file is created.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path+".1", os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("three\n")
	f.Close()
	appendTo("four\n")
	expect("four\n")
	expect("three\n")

	// copytruncate: the file shrinks to nothing and grows again.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	appendTo("five\n")
	expect("five\n")
	if code := stop(); code != 0 {
		t.Errorf("exit %d: %s", code, errb.String())
	}
	if got := out.String(); strings.Count(got, "four") != 1 || strings.Count(got, "two") != 1 {
		t.Errorf("a line printed twice:\n%s", got)
	}
	if !strings.Contains(errb.String(), "truncated") || !strings.Contains(errb.String(), "replaced") {
		t.Errorf("stderr does not say what happened:\n%s", errb.String())
	}
}

func TestTailLastLinesOfLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "records.log")
	os.WriteFile(path, []byte("1\n2\n3\n4\n"), 0o644)
	code, out, stderr := runCmd(t, "tail", "-n", "2", "--db", filepath.Join(dir, "dstwatch.db"))
	if code != 0 || out != "3\n4\n" {
		t.Errorf("exit %d, %q %s", code, out, stderr)
	}
}
