package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

const usage = `dstwatch: where does this host's traffic go, how much, and to which countries?

Usage:
  dstwatch run [flags]      capture, tally per remote in windows, store and log them
  dstwatch query [flags]    answer questions over the stored windows
  dstwatch tail [flags]     print the end of the record log, or follow it (-f)
  dstwatch status [flags]   print the running daemon's state
  dstwatch value METRIC     print one number (tx_bytes, remotes, ...) for monitoring agents
  dstwatch discover WHAT    print Zabbix discovery JSON for services or countries
  dstwatch top [flags]      a live terminal view of where traffic goes
  dstwatch report [flags]   a day's, week's or month's report as text or HTML, or mailed
  dstwatch compact [flags]  shrink the database file after pruning (daemon stopped)
  dstwatch incidents        list alert incidents (--rules), active and past;
                            'dstwatch incidents expire ID' ends one now
  dstwatch version          print the version

query, tail and status ask the running daemon over its unix socket; query and
tail read the database themselves when no daemon runs. Exit status: 0 ok,
1 error, 2 bad usage, 3 the command needs a running daemon and none runs.

Run 'dstwatch COMMAND --help' for a command's flags and examples.
`

// errUsage marks errors that are the caller's words being off: exit 2.
var errUsage = errors.New("usage")

// run is main without the process: tests call it with their own args and writers.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stdout, stderr)
	case "query":
		err = cmdQuery(ctx, args[1:], stdout, stderr)
	case "tail":
		err = cmdTail(ctx, args[1:], stdout, stderr)
	case "status":
		err = cmdStatus(ctx, args[1:], stdout, stderr)
	case "value":
		err = cmdValue(ctx, args[1:], stdout, stderr)
	case "discover":
		err = cmdDiscover(ctx, args[1:], stdout, stderr)
	case "top":
		err = cmdTop(ctx, args[1:], stdout, stderr)
	case "report":
		err = cmdReport(ctx, args[1:], stdout, stderr)
	case "compact":
		err = cmdCompact(ctx, args[1:], stdout, stderr)
	case "incidents":
		err = cmdIncidents(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "dstwatch", buildVersion())
	case "gendocs": // hidden: scripts/package's man pages and completions (docs.go)
		err = cmdGendocs(ctx, args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "dstwatch: unknown command %q; run 'dstwatch help' for the list\n", args[0])
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errNotRunning):
		fmt.Fprintf(stderr, "dstwatch %s: %v\n", args[0], err)
		return 3
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "dstwatch %s: %s\n", args[0], strings.TrimPrefix(err.Error(), "usage: "))
		return 2
	default:
		fmt.Fprintf(stderr, "dstwatch %s: %v\n", args[0], err)
		return 1
	}
}

// newFlagSet returns a FlagSet whose parse errors come back as one line
// (errUsage) instead of the flag package's usage dump, and whose --help prints
// the command's text to stdout.
func newFlagSet(name, help string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		if docsHook != nil {
			docsHook(fs, help)
			return
		}
		fmt.Fprint(stdout, help)
		fmt.Fprintln(stdout, "\nFlags:")
		printFlags(stdout, fs)
	}
	return fs
}

// printFlags lists flags the way they are written: --name, one-letter
// aliases as -x, with their defaults.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		arg, usage := flag.UnquoteUsage(f)
		line := "  " + dash + f.Name
		if arg != "" {
			line += " " + arg
		}
		fmt.Fprintf(w, "%s\n      %s", line, usage)
		if d := shownDefault(f); d != "" {
			fmt.Fprintf(w, " (default %s)", d)
		}
		fmt.Fprintln(w)
	})
}

// parse parses args, turning flag errors into errUsage and rejecting
// positional arguments the command does not take.
func parse(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q%s", errUsage, fs.Arg(0), seeHelp(fs))
	}
	return nil
}

// parseFlags is fs.Parse printing the help (on stdout) only when asked for
// it: the flag package prints fs.Usage on every error too, and a monitoring
// agent reading 'value' or 'discover' would take the help text for the
// answer. A flag error is one errUsage line.
func parseFlags(fs *flag.FlagSet, args []string) error {
	help := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = help
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		help()
		return err
	}
	return fmt.Errorf("%w: %v%s", errUsage, err, seeHelp(fs))
}

// seeHelp points a usage error at the command's help.
func seeHelp(fs *flag.FlagSet) string {
	return " (see dstwatch " + fs.Name() + " --help)"
}
