package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/alert"
	"github.com/dstwatch/dstwatch/internal/netnstest"
)

// The rules example the package ships is a valid rules file.
func TestPackagedRulesExampleLoads(t *testing.T) {
	rs, err := alert.LoadRules(filepath.Join("..", "..", "packaging", "rules.yaml.example"))
	if err != nil {
		t.Fatal(err)
	}
	if rs == nil || len(rs.Rules) == 0 {
		t.Fatalf("no rules in the example: %+v", rs)
	}
}

// installed reports whether dpkg knows a dstwatch package in any state
// other than not-installed (config-files left counts).
func installed(t *testing.T) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", "dstwatch").Output()
	return err == nil && strings.TrimSpace(string(out)) != "" && strings.TrimSpace(string(out)) != "not-installed"
}

// dpkg runs dpkg, waiting while another dpkg or apt holds its lock (an
// install elsewhere on the machine): dpkg itself fails at once then.
func dpkg(args ...string) ([]byte, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		out, err := exec.Command("dpkg", args...).CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte("lock")) || time.Now().After(deadline) {
			return out, err
		}
		time.Sleep(2 * time.Second)
	}
}

// overstrike is man's bold and underline when not on a terminal.
var overstrike = regexp.MustCompile(".\x08")

// scripts/package builds a .deb that dpkg installs with the stamped
// binary, the unit, a man page per command, the completions, the rules
// example and the docs, and that dpkg -r and -P remove without a file left
// behind.
func TestDebianPackage(t *testing.T) {
	t.Parallel() // no other test uses dpkg or the paths the package installs
	if os.Geteuid() != 0 {
		netnstest.Unable(t, "the package test installs with dpkg and needs root (CI runs as root)")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		netnstest.Unable(t, "the package test needs dpkg (a Debian or Ubuntu machine)")
	}
	// Never touch a dstwatch someone installed: skip, saying why.
	if installed(t) {
		t.Skip("a dstwatch package is installed here; not replacing it (dpkg -P dstwatch to run this test)")
	}
	for _, p := range []string{"/usr/bin/dstwatch", "/usr/lib/systemd/system/dstwatch.service", "/var/lib/dstwatch"} {
		if _, err := os.Lstat(p); err == nil {
			t.Skipf("%s exists and is not from a package; not overwriting it", p)
		}
	}
	describe, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Skipf("not in a git checkout (%v): the version cannot be checked", err)
	}
	dist := t.TempDir()
	cmd := exec.Command(filepath.Join("..", "..", "scripts", "package"))
	cmd.Env = append(os.Environ(), "DIST="+dist)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "dstwatch_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("want one .deb in %s, got %v", dist, debs)
	}
	// Registered before the install, so that a failure anywhere after it
	// still leaves the machine as it was.
	t.Cleanup(func() {
		if installed(t) {
			if out, err := dpkg("-P", "dstwatch"); err != nil {
				t.Errorf("cleanup dpkg -P: %v\n%s", err, out)
			}
		}
	})
	if out, err := dpkg("-i", debs[0]); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	out, err := exec.Command("dpkg", "-L", "dstwatch").Output()
	if err != nil {
		t.Fatalf("dpkg -L: %v", err)
	}
	var files []string
	for _, f := range strings.Fields(string(out)) {
		if fi, err := os.Stat(f); err != nil {
			t.Errorf("dpkg lists %s, which is not there: %v", f, err)
		} else if !fi.IsDir() {
			files = append(files, f)
		}
	}
	for _, want := range []string{
		"/usr/bin/dstwatch",
		"/usr/lib/systemd/system/dstwatch.service",
		"/usr/share/bash-completion/completions/dstwatch",
		"/usr/share/zsh/vendor-completions/_dstwatch",
		"/usr/share/doc/dstwatch/examples/rules.yaml",
		"/usr/share/doc/dstwatch/changelog.gz",
		"/usr/share/doc/dstwatch/README.md",
		"/usr/share/doc/dstwatch/docs/dashboard.png",
		"/usr/share/man/man1/dstwatch.1.gz",
	} {
		if !contains(files, want) {
			t.Errorf("the package lacks %s", want)
		}
	}

	// Every page of the manual, as the repository has it.
	pages, _ := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if len(pages) == 0 {
		t.Fatal("no docs/*.md in the repository")
	}
	for _, p := range pages {
		dst := "/usr/share/doc/dstwatch/docs/" + filepath.Base(p)
		want, _ := os.ReadFile(p)
		if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, want) {
			t.Errorf("the package's %s differs from docs/%s (%v)", dst, filepath.Base(p), err)
		}
	}

	// The binary: the stamped version, and static.
	v, err := exec.Command("/usr/bin/dstwatch", "version").Output()
	if want := "dstwatch " + strings.TrimSpace(string(describe)) + "\n"; err != nil || string(v) != want {
		t.Errorf("dstwatch version: %q (%v), want %q", v, err, want)
	}
	if out, err := exec.Command("file", "/usr/bin/dstwatch").Output(); err == nil && !strings.Contains(string(out), "statically linked") {
		t.Errorf("the packaged binary is not static: %s", out)
	}
	unit, _ := os.ReadFile("/usr/lib/systemd/system/dstwatch.service")
	if !strings.Contains(string(unit), "\nExecStart=/usr/bin/dstwatch run ") || strings.Contains(string(unit), "/usr/local/") {
		t.Errorf("the packaged unit does not start /usr/bin/dstwatch:\n%s", unit)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := exec.Command("systemd-analyze", "verify", "/usr/lib/systemd/system/dstwatch.service").CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
		}
	}

	// A man page per command, readable by man, each naming its flags.
	var cmds []string
	for _, line := range strings.Split(usage, "\n") {
		if m := usageLine.FindStringSubmatch(line); m != nil {
			cmds = append(cmds, m[1])
		}
	}
	for _, c := range cmds {
		page := "/usr/share/man/man1/dstwatch-" + c + ".1.gz"
		if !contains(files, page) {
			t.Errorf("no man page for %s: %s", c, page)
			continue
		}
		if _, err := exec.LookPath("man"); err != nil {
			continue
		}
		cmd := exec.Command("man", "-l", page)
		cmd.Env = append(os.Environ(), "MANWIDTH=100", "MANPAGER=cat")
		out, err := cmd.CombinedOutput()
		out = overstrike.ReplaceAll(out, nil)
		if err != nil || !strings.Contains(string(out), "dstwatch-"+c) {
			t.Errorf("man -l %s: %v\n%s", page, err, out)
		}
		if c == "run" && !strings.Contains(string(out), "--ring-mb") {
			t.Errorf("man dstwatch-run lacks --ring-mb:\n%s", out)
		}
	}
	// The installed bash completion completes a command.
	if bash, err := exec.LookPath("bash"); err == nil {
		script := `source /usr/share/bash-completion/completions/dstwatch; COMP_WORDS=(dstwatch ru); COMP_CWORD=1; _dstwatch; echo "${COMPREPLY[@]}"`
		if out, err := exec.Command(bash, "-c", script).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "run" {
			t.Errorf("bash completion of 'dstwatch ru': %q (%v)", out, err)
		}
	}

	// Remove, then purge: nothing of the package is left.
	if out, err := dpkg("-r", "dstwatch"); err != nil {
		t.Fatalf("dpkg -r: %v\n%s", err, out)
	}
	if _, err := os.Stat("/usr/bin/dstwatch"); !os.IsNotExist(err) {
		t.Errorf("dpkg -r left /usr/bin/dstwatch (%v)", err)
	}
	if out, err := dpkg("-P", "dstwatch"); err != nil {
		t.Fatalf("dpkg -P: %v\n%s", err, out)
	}
	if installed(t) {
		t.Error("dpkg still knows dstwatch after dpkg -P")
	}
	for _, f := range append(files, "/usr/share/doc/dstwatch", "/var/lib/dstwatch") {
		if _, err := os.Lstat(f); !os.IsNotExist(err) {
			t.Errorf("%s is still there after dpkg -P (%v)", f, err)
		}
	}
}
