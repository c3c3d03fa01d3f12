package main

import (
	"os"
	"strings"
	"testing"
)

// testdata/mixed.json is real 'go test -json' output of
// testdata/mixed_test.go.txt: a passing test that logs, one with a passing
// and a skipped subtest, and a failing one.
func TestCount(t *testing.T) {
	f, err := os.Open("testdata/mixed.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out strings.Builder
	c, err := count(f, &out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.String(), "3 passed, 1 failed, 1 skipped"; got != want {
		t.Errorf("closing line %q, want %q", got, want)
	}
	if c.pkgFailed != 1 {
		t.Errorf("failed packages %d, want 1", c.pkgFailed)
	}
	o := out.String()
	for _, want := range []string{"x_test.go:5: boom", "--- FAIL: TestC", "FAIL\tx\t", "x_test.go:4: no", "--- SKIP: TestB/s2"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if strings.Contains(o, "quiet") || strings.Contains(o, "=== RUN   TestA") {
		t.Errorf("a passing test's output is shown:\n%s", o)
	}
}
