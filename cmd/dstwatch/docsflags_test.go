package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"
)

// The documentation lives in README.md and docs/*.md, at the module root.
const docsRoot = "../.."

// docFiles are the markdown files of the documentation, README first.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(docsRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("only %d files in docs/", len(files))
	}
	sort.Strings(files)
	return append([]string{filepath.Join(docsRoot, "README.md")}, files...)
}

// realFlags is every command's flag set as the commands parse it, caught
// the way gendocs catches them: "incidents expire" is a command of its own.
func realFlags(t *testing.T) map[string][]string {
	t.Helper()
	cmds, err := docCommands(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string][]string{}
	for _, c := range cmds {
		sets[c.name] = []string{}
		for _, fs := range c.sets {
			name := fs.Name() // "incidents expire" for the second set
			var names []string
			fs.VisitAll(func(f *flag.Flag) { names = append(names, dashes(f.Name)) })
			sets[name] = names
		}
	}
	if _, ok := sets["incidents expire"]; !ok {
		t.Fatal("no flag set caught for 'incidents expire'")
	}
	return sets
}

// mdLines yields a markdown file's lines with whether each is inside a
// fenced code block (the fence lines count as inside).
func mdLines(text string) (lines []string, fenced []bool) {
	in := false
	for _, l := range strings.Split(text, "\n") {
		f := strings.HasPrefix(l, "```")
		if f {
			in = !in
		}
		lines = append(lines, l)
		fenced = append(fenced, in || f)
	}
	return lines, fenced
}

var headingRe = regexp.MustCompile(`^(#{1,6}) (.*)$`)

// tableFlags are the flags in the first cell of a table row ("| `-i`,
// `--interface IF` | ..."), nil for any other line. A cell may hold an
// escaped pipe (`tx\|rx`).
func tableFlags(line string) []string {
	if !strings.HasPrefix(line, "| `-") {
		return nil
	}
	cells := regexp.MustCompile(`[^\\]\|`).Split(line[1:], 2)
	var out []string
	for _, m := range regexp.MustCompile("`(--?[a-z][a-z0-9-]*)").FindAllStringSubmatch(cells[0], -1) {
		out = append(out, m[1])
	}
	return out
}

// Every flag of every command is in a table of its command's section of
// docs/cli.md, and every flag such a table shows is one the command takes.
// Flag tables elsewhere (README, docs/*.md) may show only real flags: of
// the command their heading names, or else of some command.
func TestDocsFlags(t *testing.T) {
	sets := realFlags(t)
	all := map[string]bool{}
	for _, names := range sets {
		for _, n := range names {
			all[n] = true
		}
	}
	sectionRe := regexp.MustCompile("^`dstwatch ([a-z]+(?: [a-z]+)*)")
	documented := map[string][]string{}
	sections := map[string]bool{}
	for _, file := range docFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(docsRoot, file)
		cli := rel == filepath.Join("docs", "cli.md")
		cmd := ""
		lines, fenced := mdLines(string(b))
		for i, l := range lines {
			if fenced[i] {
				continue
			}
			if m := headingRe.FindStringSubmatch(l); m != nil {
				cmd = ""
				if s := sectionRe.FindStringSubmatch(m[2]); s != nil && sets[s[1]] != nil {
					cmd = s[1]
					if cli {
						sections[cmd] = true
					}
				}
				continue
			}
			for _, f := range tableFlags(l) {
				switch {
				case cmd != "" && !slices.Contains(sets[cmd], f):
					t.Errorf("%s:%d: the table of `dstwatch %s` shows %s, which %s does not take", rel, i+1, cmd, f, cmd)
				case cmd == "" && !all[f]:
					t.Errorf("%s:%d: a table shows %s, which no command takes", rel, i+1, f)
				case cli && cmd != "":
					documented[cmd] = append(documented[cmd], f)
				}
			}
		}
	}
	names := make([]string, 0, len(sets))
	for c := range sets {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		if !sections[c] {
			t.Errorf("docs/cli.md has no section headed `dstwatch %s`", c)
			continue
		}
		for _, f := range sets[c] {
			if !slices.Contains(documented[c], f) {
				t.Errorf("dstwatch %s takes %s, which its table in docs/cli.md does not show", c, f)
			}
		}
	}
}

// commandLines are the command lines the docs show: code blocks (fenced
// or indented, continuation lines joined) and inline code spans.
func commandLines(text string) []string {
	lines, fenced := mdLines(text)
	var out []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if fenced[i] || strings.HasPrefix(l, "    ") {
			for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
				i++
				l = strings.TrimSuffix(l, `\`) + " " + lines[i]
			}
			out = append(out, l)
			continue
		}
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(l, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// Every flag in a `dstwatch COMMAND ...` line the README and docs show,
// in code blocks and inline code, is a flag COMMAND takes.
func TestDocsCommandLines(t *testing.T) {
	sets := realFlags(t)
	invocation := regexp.MustCompile(`\bdstwatch ([a-z]+)\b([^;&|#)]*)`)
	flagRe := regexp.MustCompile(`^--?[a-z][a-z0-9-]*`)
	n := 0
	for _, file := range docFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(docsRoot, file)
		for _, l := range commandLines(string(b)) {
			for _, m := range invocation.FindAllStringSubmatch(l, -1) {
				cmd := m[1]
				if sets[cmd] == nil {
					continue
				}
				words := strings.Fields(m[2])
				if cmd == "incidents" && len(words) > 0 && words[0] == "expire" {
					cmd, words = "incidents expire", words[1:]
				}
				for _, w := range words {
					f := flagRe.FindString(w)
					if f == "" || f == "--help" {
						continue
					}
					n++
					if !slices.Contains(sets[cmd], f) {
						t.Errorf("%s shows `dstwatch %s ... %s`, which %s does not take: %s", rel, cmd, f, cmd, l)
					}
				}
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d flags found in the docs' command lines", n)
	}
}

// anchor is the id GitHub gives a heading: lower case, punctuation
// dropped, spaces made hyphens.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Every relative link in README.md and docs/*.md points at a file that
// exists and, with a #fragment, at a heading of that file.
func TestDocsLinks(t *testing.T) {
	files := docFiles(t)
	anchors := map[string]map[string]bool{}
	texts := map[string][]string{}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		abs, _ := filepath.Abs(file)
		lines, fenced := mdLines(string(b))
		ids := map[string]bool{}
		for i, l := range lines {
			if fenced[i] {
				continue
			}
			if m := headingRe.FindStringSubmatch(l); m != nil {
				id := anchor(m[2])
				if ids[id] {
					t.Errorf("%s: two headings make the anchor #%s", file, id)
				}
				ids[id] = true
			}
			texts[abs] = append(texts[abs], l)
		}
		anchors[abs] = ids
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	n := 0
	for _, file := range files {
		abs, _ := filepath.Abs(file)
		rel, _ := filepath.Rel(docsRoot, file)
		for _, l := range texts[abs] {
			l = regexp.MustCompile("`[^`]*`").ReplaceAllString(l, "")
			for _, m := range link.FindAllStringSubmatch(l, -1) {
				target := m[1]
				if regexp.MustCompile(`^[a-z]+:`).MatchString(target) {
					continue
				}
				n++
				path, frag, _ := strings.Cut(target, "#")
				dest := abs
				if path != "" {
					dest = filepath.Join(filepath.Dir(abs), filepath.FromSlash(path))
					if _, err := os.Stat(dest); err != nil {
						t.Errorf("%s: link %s: %v", rel, target, err)
						continue
					}
				}
				if frag == "" {
					continue
				}
				ids, ok := anchors[dest]
				if !ok {
					t.Errorf("%s: link %s: a #fragment into a file that is not one of the docs", rel, target)
				} else if !ids[frag] {
					t.Errorf("%s: link %s: no heading makes #%s there", rel, target, frag)
				}
			}
		}
	}
	if n < 50 {
		t.Errorf("only %d relative links found", n)
	}
}
