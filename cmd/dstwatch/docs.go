package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// 'dstwatch gendocs DIR' writes the man pages and shell completions that
// scripts/package ships. It is hidden from the usage: it is a build step,
// not something a user runs. Everything it writes comes from the flag sets
// the commands really parse (each command is run with --help and its flag
// set is caught through docsHook) and from the usage text, so the pages and
// completions cannot drift from the binary they ship with.

// docsHook, when set, receives each flag set's help instead of it being
// printed. Only cmdGendocs sets it, in a process of its own (the packaging
// script's), never while other commands run.
var docsHook func(fs *flag.FlagSet, help string)

// docCommand is one command of the usage text with the flag sets it parses
// (incidents has a second one, for 'incidents expire').
type docCommand struct {
	name, summary, help string
	sets                []*flag.FlagSet
	words               []string // the first positional words it takes, for completion
}

var usageLine = regexp.MustCompile(`^  dstwatch ([a-z]+) .*?  +(\S.*)$`)

// docCommands reads the command list from the usage text and runs each
// command's --help to catch its flag sets.
func docCommands(ctx context.Context) ([]docCommand, error) {
	var cmds []docCommand
	for _, line := range strings.Split(usage, "\n") {
		if m := usageLine.FindStringSubmatch(line); m != nil {
			cmds = append(cmds, docCommand{name: m[1], summary: m[2]})
		} else if len(cmds) > 0 && strings.HasPrefix(line, "                            ") {
			cmds[len(cmds)-1].summary += " " + strings.TrimSpace(line)
		}
	}
	defer func() { docsHook = nil }()
	for i := range cmds {
		c := &cmds[i]
		invocations := [][]string{{c.name, "--help"}}
		switch c.name {
		case "version":
			c.help = "Usage: dstwatch version\n\nPrints the version dstwatch was built as: the tag 'git describe' gave at build time, or the module version, or devel.\n"
			continue
		case "incidents":
			invocations = append(invocations, []string{"incidents", "expire", "--help"})
			c.words = []string{"expire"}
		case "value":
			c.words = valueMetrics
		case "discover":
			c.words = []string{"services", "countries"}
		}
		for _, args := range invocations {
			var caught *flag.FlagSet
			docsHook = func(fs *flag.FlagSet, help string) { caught, c.help = fs, help }
			run(ctx, args, io.Discard, io.Discard)
			if caught == nil {
				return nil, fmt.Errorf("dstwatch %s: no flag set seen", strings.Join(args[:len(args)-1], " "))
			}
			c.sets = append(c.sets, caught)
		}
	}
	if len(cmds) < 10 {
		return nil, fmt.Errorf("only %d commands found in the usage text", len(cmds))
	}
	return cmds, nil
}

func cmdGendocs(ctx context.Context, args []string) error {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: want the output directory: dstwatch gendocs DIR", errUsage)
	}
	cmds, err := docCommands(ctx)
	if err != nil {
		return err
	}
	dir := args[0]
	files := map[string]string{
		"man1/dstwatch.1": manMain(cmds),
		"bash/dstwatch":   bashCompletion(cmds),
		"zsh/_dstwatch":   zshCompletion(cmds),
	}
	for _, c := range cmds {
		files["man1/dstwatch-"+c.name+".1"] = manPage(c)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(files[n]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// shownDefault is the default --help shows for f, "" for none.
func shownDefault(f *flag.Flag) string {
	switch f.DefValue {
	case "", "0", "false", "-1":
		return ""
	}
	return f.DefValue
}

func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// roff escapes text for a man page line.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func manHeader(b *strings.Builder, page string) {
	fmt.Fprintf(b, ".TH %s 1 \"\" \"dstwatch %s\" \"dstwatch manual\"\n", strings.ToUpper(page), roff(buildVersion()))
}

// manPage renders one command's help text and flags: the text's Usage
// lines become the synopsis, its paragraphs the description (indented
// ones kept as they are), its Examples the examples.
func manPage(c docCommand) string {
	var b strings.Builder
	page := "dstwatch-" + c.name
	manHeader(&b, page)
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", page, roff(c.summary))
	lines := strings.Split(strings.TrimRight(c.help, "\n"), "\n")
	b.WriteString(".SH SYNOPSIS\n.nf\n")
	i := 0
	for ; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
		b.WriteString(roff(strings.TrimSpace(strings.TrimPrefix(lines[i], "Usage:"))) + "\n")
	}
	b.WriteString(".fi\n.SH DESCRIPTION\n")
	var examples []string
	var para []string
	flush := func() {
		if len(para) == 0 {
			return
		}
		indented := strings.HasPrefix(para[0], " ")
		if indented {
			b.WriteString(".PP\n.nf\n")
		} else {
			b.WriteString(".PP\n")
		}
		for _, l := range para {
			b.WriteString(roff(l) + "\n")
		}
		if indented {
			b.WriteString(".fi\n")
		}
		para = nil
	}
	for ; i < len(lines); i++ {
		l := lines[i]
		switch {
		case l == "Examples:":
			flush()
			examples = lines[i+1:]
			i = len(lines)
		case strings.TrimSpace(l) == "":
			flush()
		case len(para) > 0 && strings.HasPrefix(l, " ") != strings.HasPrefix(para[0], " "):
			flush()
			para = append(para, l)
		default:
			para = append(para, l)
		}
	}
	flush()
	for j, fs := range c.sets {
		if j == 0 {
			b.WriteString(".SH OPTIONS\n")
		} else {
			fmt.Fprintf(&b, ".SS Options of dstwatch %s\n", roff(fs.Name()))
		}
		fs.VisitAll(func(f *flag.Flag) {
			arg, use := flag.UnquoteUsage(f)
			b.WriteString(".TP\n\\fB" + roff(dashes(f.Name)) + "\\fR")
			if arg != "" {
				b.WriteString(" \\fI" + roff(arg) + "\\fR")
			}
			b.WriteString("\n" + roff(use))
			if d := shownDefault(f); d != "" {
				b.WriteString(" (default " + roff(d) + ")")
			}
			b.WriteString("\n")
		})
	}
	if len(examples) > 0 {
		b.WriteString(".SH EXAMPLES\n.nf\n")
		for _, l := range examples {
			b.WriteString(roff(strings.TrimPrefix(l, "  ")) + "\n")
		}
		b.WriteString(".fi\n")
	}
	b.WriteString(".SH SEE ALSO\n.BR dstwatch (1)\n")
	return b.String()
}

func manMain(cmds []docCommand) string {
	var b strings.Builder
	manHeader(&b, "dstwatch")
	title, rest, _ := strings.Cut(usage, "\n")
	fmt.Fprintf(&b, ".SH NAME\ndstwatch \\- %s\n", roff(strings.TrimPrefix(title, "dstwatch: ")))
	b.WriteString(".SH SYNOPSIS\n.B dstwatch\n.I command\n[\\fIflags\\fR]\n.SH COMMANDS\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, ".TP\n.B dstwatch %s\n%s; see \\fBdstwatch\\-%s\\fR(1)\n", c.name, roff(c.summary), c.name)
	}
	// The usage's paragraphs after the command list: clients, exit status.
	_, after, _ := strings.Cut(rest, "\n\n")
	_, after, _ = strings.Cut(after, "\n\n")
	b.WriteString(".SH DESCRIPTION\n")
	for _, p := range strings.Split(strings.TrimSpace(after), "\n\n") {
		b.WriteString(".PP\n" + roff(p) + "\n")
	}
	b.WriteString(".SH FILES\n.TP\n.I /var/lib/dstwatch/\nthe database (dstwatch.db), record log (records.log), incidents (alerts.db) and API socket (dstwatch.sock) of a daemon run as root or by the systemd unit\n")
	b.WriteString(".SH SEE ALSO\n")
	for i, c := range cmds {
		sep := ",\n"
		if i == len(cmds)-1 {
			sep = "\n"
		}
		fmt.Fprintf(&b, ".BR dstwatch\\-%s (1)%s", c.name, sep)
	}
	return b.String()
}

// argKind says what a flag's value is, for completion: a file, an
// interface, or anything.
func argKind(f *flag.Flag) string {
	arg, _ := flag.UnquoteUsage(f)
	switch {
	case strings.Contains(arg, "file") || strings.Contains(arg, "path"):
		return "file"
	case arg == "interface":
		return "interface"
	case arg == "user":
		return "user"
	case arg == "group":
		return "group"
	}
	return "value"
}

func bashCompletion(cmds []docCommand) string {
	var b strings.Builder
	b.WriteString("# bash completion for dstwatch; generated by 'dstwatch gendocs' from its flag sets\n")
	var names []string
	for _, c := range cmds {
		names = append(names, c.name)
	}
	b.WriteString("_dstwatch() {\n")
	b.WriteString("  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} flags='' kind='' words=''\n")
	b.WriteString("  if [ \"$COMP_CWORD\" -eq 1 ]; then\n")
	fmt.Fprintf(&b, "    COMPREPLY=($(compgen -W '%s help' -- \"$cur\"))\n    return\n  fi\n", strings.Join(names, " "))
	b.WriteString("  case ${COMP_WORDS[1]} in\n")
	for _, c := range cmds {
		if len(c.sets) == 0 {
			continue
		}
		var flags []string
		kinds := map[string][]string{}
		seen := map[string]bool{}
		for _, fs := range c.sets {
			fs.VisitAll(func(f *flag.Flag) {
				n := dashes(f.Name)
				if seen[n] {
					return
				}
				seen[n] = true
				flags = append(flags, n)
				if !isBool(f) {
					k := argKind(f)
					kinds[k] = append(kinds[k], n)
				}
			})
		}
		fmt.Fprintf(&b, "  %s)\n    flags='%s'\n", c.name, strings.Join(flags, " "))
		if len(c.words) > 0 {
			fmt.Fprintf(&b, "    words='%s'\n", strings.Join(c.words, " "))
		}
		b.WriteString("    case $prev in\n")
		for _, k := range []string{"file", "interface", "user", "group", "value"} {
			if len(kinds[k]) > 0 {
				fmt.Fprintf(&b, "    %s) kind=%s ;;\n", strings.Join(kinds[k], "|"), k)
			}
		}
		b.WriteString("    esac ;;\n")
	}
	b.WriteString("  esac\n")
	b.WriteString(`  case $kind in
  file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  interface) COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur")); return ;;
  user) COMPREPLY=($(compgen -u -- "$cur")); return ;;
  group) COMPREPLY=($(compgen -g -- "$cur")); return ;;
  value) return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  elif [ "$COMP_CWORD" -eq 2 ] && [ -n "$words" ]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  fi
}
complete -F _dstwatch dstwatch
`)
	return b.String()
}

// zshQuote makes s safe inside a single-quoted _arguments spec's
// [description].
func zshQuote(s string) string {
	s = strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`, "'", `'\''`, ":", `\:`).Replace(s)
	if i := strings.IndexAny(s, ";("); i > 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}

func zshCompletion(cmds []docCommand) string {
	var b strings.Builder
	b.WriteString("#compdef dstwatch\n# zsh completion for dstwatch; generated by 'dstwatch gendocs' from its flag sets\n\n_dstwatch() {\n  local -a cmds\n  cmds=(\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "    '%s:%s'\n", c.name, zshQuote(c.summary))
	}
	b.WriteString("  )\n  if (( CURRENT == 2 )); then\n    _describe 'command' cmds\n    return\n  fi\n")
	b.WriteString("  local cmd=$words[2]\n  shift words\n  (( CURRENT-- ))\n  case $cmd in\n")
	for _, c := range cmds {
		if len(c.sets) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  %s)\n    _arguments -S \\\n", c.name)
		seen := map[string]bool{}
		for _, fs := range c.sets {
			fs.VisitAll(func(f *flag.Flag) {
				n := dashes(f.Name)
				if seen[n] {
					return
				}
				seen[n] = true
				_, use := flag.UnquoteUsage(f)
				if isBool(f) {
					fmt.Fprintf(&b, "      '%s[%s]' \\\n", n, zshQuote(use))
					return
				}
				action := ""
				switch argKind(f) {
				case "file":
					action = "_files"
				case "interface":
					action = "_net_interfaces"
				case "user":
					action = "_users"
				case "group":
					action = "_groups"
				}
				arg, _ := flag.UnquoteUsage(f)
				fmt.Fprintf(&b, "      '%s=[%s]:%s:%s' \\\n", n, zshQuote(use), zshQuote(arg), action)
			})
		}
		if len(c.words) > 0 {
			fmt.Fprintf(&b, "      '1:%s:(%s)' \\\n", c.name, strings.Join(c.words, " "))
		}
		b.WriteString("      '*:: :' ;;\n")
	}
	b.WriteString("  esac\n}\n\n_dstwatch \"$@\"\n")
	return b.String()
}
