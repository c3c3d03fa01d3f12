package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/internal/netnstest"
)

// gendocs runs the real binary's hidden gendocs into a new directory.
func gendocs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command(binary(t), "gendocs", dir).CombinedOutput(); err != nil {
		t.Fatalf("gendocs: %v\n%s", err, out)
	}
	return dir
}

// helpFlags lists the flags a command's --help shows, as written there.
func helpFlags(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command(binary(t), append(args, "--help")...).Output()
	if err != nil {
		t.Fatalf("%v --help: %v", args, err)
	}
	_, flags, ok := strings.Cut(string(out), "\nFlags:\n")
	if !ok {
		t.Fatalf("%v --help has no Flags section:\n%s", args, out)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  (--?[a-z0-9-]+)`).FindAllStringSubmatch(flags, -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("%v --help lists no flags", args)
	}
	return names
}

// Every command in the usage has a man page that groff reads without a
// warning and that documents every flag its --help lists: the pages are
// made from the flag sets themselves, so a new flag shows up in them.
func TestGendocsManPages(t *testing.T) {
	dir := gendocs(t)
	var cmds []string
	for _, line := range strings.Split(usage, "\n") {
		if m := usageLine.FindStringSubmatch(line); m != nil {
			cmds = append(cmds, m[1])
		}
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "man1", "*.1"))
	if len(pages) != len(cmds)+1 {
		t.Errorf("%d man pages for %d commands (+ dstwatch.1): %v", len(pages), len(cmds), pages)
	}
	groff, _ := exec.LookPath("groff")
	for _, c := range append([]string{""}, cmds...) {
		page := "dstwatch.1"
		if c != "" {
			page = "dstwatch-" + c + ".1"
		}
		b, err := os.ReadFile(filepath.Join(dir, "man1", page))
		if err != nil {
			t.Error(err)
			continue
		}
		if groff != "" {
			out, err := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", filepath.Join(dir, "man1", page)).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("groff on %s: %v\n%s", page, err, out)
			}
		}
		if c == "" || c == "version" {
			continue
		}
		sets := [][]string{{c}}
		if c == "incidents" {
			sets = append(sets, []string{"incidents", "expire"})
		}
		for _, s := range sets {
			for _, f := range helpFlags(t, s...) {
				if !strings.Contains(string(b), `\fB`+roff(f)+`\fR`) {
					t.Errorf("%s lacks %s, which '%s --help' lists", page, f, strings.Join(s, " "))
				}
			}
		}
	}
	if groff == "" {
		t.Log("groff not installed: pages not parsed")
	}
}

// The bash completion completes commands, every flag of a command, the
// first word of value, and file names after a file flag.
func TestGendocsBashCompletion(t *testing.T) {
	dir := gendocs(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	complete := func(words ...string) []string {
		t.Helper()
		script := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _dstwatch; printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command(bash, append([]string{"-c", script, "bash", filepath.Join(dir, "bash", "dstwatch")}, words...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("completion of %q: %v\n%s", words, err, out)
		}
		return strings.Fields(string(out))
	}
	if got := complete("dstwatch", "inc"); strings.Join(got, " ") != "incidents" {
		t.Errorf("dstwatch inc<TAB>: %q", got)
	}
	for _, f := range helpFlags(t, "run") {
		if got := complete("dstwatch", "run", f); !contains(got, f) {
			t.Errorf("dstwatch run %s<TAB>: %q, want it among them", f, got)
		}
	}
	if got := complete("dstwatch", "value", "tx_"); strings.Join(got, " ") != "tx_bytes tx_packets" {
		t.Errorf("dstwatch value tx_<TAB>: %q", got)
	}
	if got := complete("dstwatch", "run", "--db", "ma"); strings.Join(got, " ") != "man1" {
		t.Errorf("dstwatch run --db ma<TAB> in the output dir: %q, want man1", got)
	}
	if got := complete("dstwatch", "run", "--window", ""); len(got) != 0 {
		t.Errorf("dstwatch run --window <TAB>: %q, want nothing (a value, not a flag)", got)
	}
	if zsh, err := exec.LookPath("zsh"); err == nil {
		if out, err := exec.Command(zsh, "-n", filepath.Join(dir, "zsh", "_dstwatch")).CombinedOutput(); err != nil {
			t.Errorf("zsh -n _dstwatch: %v\n%s", err, out)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// zshCapture types a command line into an interactive zsh on a pty and
// prints every candidate its completion system adds (compadd wrapped).
// The echo after the line (^U clears the line first; ^C would flush the
// typed keys) waits for the widget: zsh reads it only once the completion
// has run. The line is typed only once zle drew the prompt after READY:
// typed as soon as READY showed, the completion found no candidates in
// about one run in three. Quotes keep the typed echo from matching.
const zshCapture = `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1='<Z''P>'; fpath=($1 \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z '_capture() { compadd() { builtin compadd -O __c "$@"; print -rl -- $__c >> '"$3"'; }; _main_complete; unfunction compadd }'
zpty -w z 'zle -C capture complete-word _capture; bindkey "^T" capture'
zpty -w z 'echo RE""ADY'
zpty -r z line '*READY*'
zpty -r z line '*<ZP>*'
zpty -w -n z "$2"$'\x14'
zpty -w z $'\x15echo DO""NE'
zpty -r z line '*DONE*'
zpty -d z
`

// The zsh completion, loaded by compinit from its fpath directory as zsh
// would load the packaged file, completes commands, flags and words.
func TestGendocsZshCompletion(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		netnstest.Unable(t, "the zsh completion test needs zsh (apt-get install zsh)")
	}
	dir := gendocs(t)
	script := filepath.Join(t.TempDir(), "capture.zsh")
	if err := os.WriteFile(script, []byte(zshCapture), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ line, want string }{
		{"dstwatch inc", "incidents"},
		{"dstwatch run --ring", "--ring-mb"},
		{"dstwatch query --for", "--format"},
		{"dstwatch value tx_", "tx_bytes tx_packets"},
		{"dstwatch incidents exp", "expire"},
	} {
		out := filepath.Join(t.TempDir(), "cands")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a pattern never seen waits forever
		defer cancel()
		cmd := exec.CommandContext(ctx, zsh, script, filepath.Join(dir, "zsh"), tc.line, out)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%q: %v\n%s", tc.line, err, b)
		}
		b, _ := os.ReadFile(out)
		got := strings.Fields(string(b))
		sort.Strings(got)
		got = slices.Compact(got)
		if strings.Join(got, " ") != tc.want {
			t.Errorf("zsh: %s<TAB>: %q, want %q", tc.line, got, tc.want)
		}
	}
}
