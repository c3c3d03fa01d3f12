// Command testcount reads 'go test -json' on stdin and prints what plain
// 'go test' would (package results, and the output of failing tests only),
// with the reasons of skipped tests, then one closing line that CI reads:
//
//	N passed, N failed, N skipped
//
// Every test and subtest counts once. It exits 1 when a test or a package
// failed (a build error too), so scripts/test keeps its exit status with
// pipefail. -summary FILE also writes the closing line there, for printing
// again at the very end of a longer script.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type counts struct{ passed, failed, skipped, pkgFailed int }

func (c counts) String() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", c.passed, c.failed, c.skipped)
}

func count(in io.Reader, out io.Writer) (counts, error) {
	var c counts
	held := map[string][]string{} // a running test's output, printed if it fails
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			fmt.Fprintf(out, "%s\n", line) // not JSON: go's own errors
			continue
		}
		key := e.Package + " " + e.Test
		switch {
		case e.Action == "build-output" || e.Action == "build-fail":
			fmt.Fprint(out, e.Output)
		case e.Test == "":
			switch e.Action {
			case "output":
				// Package lines (ok, FAIL, no test files) as go test
				// prints them; the per-run PASS/FAIL markers are noise.
				if o := e.Output; o != "PASS\n" && o != "FAIL\n" && !strings.HasPrefix(o, "=== ") {
					fmt.Fprint(out, o)
				}
			case "fail":
				c.pkgFailed++
			}
		case e.Action == "output":
			held[key] = append(held[key], e.Output)
		case e.Action == "pass":
			c.passed++
			delete(held, key)
		case e.Action == "skip":
			// A skip says why; as root in CI none should happen, so each
			// is shown rather than only counted.
			c.skipped++
			for _, o := range held[key] {
				if !strings.HasPrefix(o, "=== ") {
					fmt.Fprint(out, o)
				}
			}
			delete(held, key)
		case e.Action == "fail":
			c.failed++
			for _, o := range held[key] {
				fmt.Fprint(out, o)
			}
			delete(held, key)
		}
	}
	return c, sc.Err()
}

func main() {
	summary := flag.String("summary", "", "also write the closing line to this `file`")
	flag.Parse()
	c, err := count(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testcount:", err)
		os.Exit(1)
	}
	fmt.Println(c)
	if *summary != "" {
		if err := os.WriteFile(*summary, []byte(c.String()+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "testcount:", err)
			os.Exit(1)
		}
	}
	if c.failed > 0 || c.pkgFailed > 0 {
		os.Exit(1)
	}
}
