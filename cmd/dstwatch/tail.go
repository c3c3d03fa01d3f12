package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/reclog"
	"github.com/dstwatch/dstwatch/window"
)

const tailHelp = `Usage: dstwatch tail [flags]

Prints the last lines of the record log and, with -f, follows it as it
grows, like tail -F: it keeps following across logrotate (the file renamed
and a new one created) and truncation, and waits for a missing file.

With --format json it prints stored windows instead, one JSON object per
line (the shape of 'query --by window --format json'): the last -n windows,
and with -f every window as the daemon stores it. Following needs the
running daemon; the last windows are read from the database when none runs.

Exit status: 0 (also when stopped with Ctrl-C), 3 when --format json -f
finds no daemon running, 1 on other errors.

Examples:
  dstwatch tail -n 50
  dstwatch tail -f
  dstwatch tail -f --format json | jq -c '{start, remotes: (.remotes | length)}'
`

func cmdTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tail", tailHelp, stdout)
	db := fs.String("db", defaultDB(), "bbolt database `file`; the record log and socket are found beside it")
	recLog := fs.String("record-log", "", "record log `file` (default: records.log beside --db)")
	socket := fs.String("socket", "", "the daemon's API socket `path` (default: dstwatch.sock beside --db)")
	n := fs.Int("n", 10, "print the last `N` lines (windows with --format json)")
	follow := fs.Bool("f", false, "follow: print what is appended (stored) from now on until interrupted")
	format := fs.String("format", "text", "text (the record log) or json (stored windows)")
	if err := parse(fs, args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if *n < 0 || *n > api.MaxLast {
		return fmt.Errorf("%w: -n %d: want 0 to %d", errUsage, *n, api.MaxLast)
	}
	switch *format {
	case "text":
		path := *recLog
		if path == "" {
			path = recordLogFor(*db)
		}
		return tailText(ctx, path, *n, *follow, stdout, stderr)
	case "json":
		if given["record-log"] {
			return fmt.Errorf("%w: --record-log is for text; --format json reads stored windows", errUsage)
		}
		return tailJSON(ctx, *db, *socket, given["db"], *n, *follow, stdout, stderr)
	}
	return fmt.Errorf("%w: --format %q: want text or json", errUsage, *format)
}

// tailText prints the last n lines of path, then follows it when follow.
func tailText(ctx context.Context, path string, n int, follow bool, stdout, stderr io.Writer) error {
	f, err := os.Open(path)
	switch {
	case err == nil:
	case follow && errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(stderr, "dstwatch tail: %s does not exist yet; waiting for it\n", path)
	default:
		return fmt.Errorf("record log: %w", err)
	}
	var off int64
	if f != nil {
		if off, err = reclog.LastLines(stdout, f, n); err != nil {
			f.Close()
			return fmt.Errorf("record log %s: %w", path, err)
		}
	}
	if !follow {
		return f.Close()
	}
	return reclog.Follow(ctx, path, f, off, stdout, 200*time.Millisecond, func(e reclog.FollowEvent) {
		switch e {
		case reclog.Truncated:
			fmt.Fprintf(stderr, "dstwatch tail: %s: file truncated\n", path)
		case reclog.Replaced:
			fmt.Fprintf(stderr, "dstwatch tail: %s has been replaced; following the new file\n", path)
		}
	})
}

func writeWindowLine(w io.Writer, win *window.Window) error {
	b, err := json.Marshal(query.ToWindowJSON(win))
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// tailJSON prints the last n stored windows and, when follow, every window
// stored afterwards. When the stream breaks (the daemon restarts, or this
// reader fell behind) it reconnects and first fetches what it missed.
func tailJSON(ctx context.Context, db, socket string, dbGiven bool, n int, follow bool, stdout, stderr io.Writer) error {
	if !follow {
		rd, _, done, err := openReader(ctx, db, socket, dbGiven)
		if err != nil {
			return err
		}
		defer done()
		if n == 0 {
			return nil
		}
		// All read before any is printed: a read that fails prints nothing.
		var ws []*window.Window
		if err := rd.Windows(ctx, query.Range{Last: n}, func(w *window.Window) error {
			ws = append(ws, w)
			return nil
		}); err != nil {
			return err
		}
		for _, w := range ws {
			if err := writeWindowLine(stdout, w); err != nil {
				return err
			}
		}
		return nil
	}
	sock := socketFor(socket, db)
	c, st, err := dialDaemon(ctx, sock)
	if errors.Is(err, api.ErrNotRunning) {
		return fmt.Errorf("%w: no daemon answers on %s; following needs the running daemon", errNotRunning, sock)
	}
	if err != nil {
		return err
	}
	if dbGiven && !sameFile(db, st.DB.Path) {
		return fmt.Errorf("the daemon on %s serves %s, not %s; give the --socket of the daemon that owns %s", sock, st.DB.Path, db, db)
	}
	// The last n windows (or, with n 0, only where "new" begins); with
	// none stored, every window found later was stored since tail began.
	newest := time.Now().Add(-24 * time.Hour)
	r := query.Range{Last: max(n, 1)}
	if err := c.Windows(ctx, r, func(w *window.Window) error {
		if w.Start.After(newest) {
			newest = w.Start
		}
		if n == 0 {
			return nil
		}
		return writeWindowLine(stdout, w)
	}); err != nil {
		return err
	}
	c.Close()
	return api.Follow(ctx, func() *api.Client { return api.NewClient(sock) }, newest, func(w *window.Window) error {
		return writeWindowLine(stdout, w)
	}, nil, func(err error) error {
		switch {
		case err == nil:
			fmt.Fprintln(stderr, "dstwatch tail: the daemon ended the stream; reconnecting")
		case errors.Is(err, api.ErrNotRunning):
			// The daemon is restarting: wait for it, as tail -F waits for a file.
		default:
			return err
		}
		return nil
	})
}
