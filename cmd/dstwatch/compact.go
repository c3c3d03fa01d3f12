package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/storage"
)

const compactHelp = `Usage: dstwatch compact [flags]

Rewrites the database into as few pages as its data needs and puts the copy
in place of the file. Pruning frees pages for reuse inside the file but
never gives them back to the file system, so after a retention was lowered
(or the raw windows of an older, longer default retention were pruned) the
file stays as large as it once was until it is compacted.

The daemon must be stopped first (e.g. systemctl stop dstwatch): compact
stops nobody. It refuses while a daemon answers on the socket or holds the
database's lock. The copy is written beside the file as FILE.compact (there
must be room for it), checked, given the file's owner and mode, and renamed
over FILE; the file is locked until then, so a daemon started meanwhile
fails to open it rather than write to a file about to be replaced. An older
format is upgraded first. Windows and rollups whose stored value is damaged
(it does not decode; the daemon skips them and says so) are left out of the
copy, and each one is named.

Examples:
  systemctl stop dstwatch && dstwatch compact && systemctl start dstwatch
  dstwatch compact --db /srv/dstwatch/dstwatch.db
`

func cmdCompact(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compact", compactHelp, stdout)
	db := fs.String("db", defaultDB(), "bbolt database `file`")
	socket := fs.String("socket", "", "the daemon's API socket `path`, to check that none runs (default: dstwatch.sock beside --db)")
	if err := parse(fs, args); err != nil {
		return err
	}
	const stop = "stop the daemon first (e.g. systemctl stop dstwatch); compact stops nobody"
	sock := socketFor(*socket, *db)
	if _, st, err := dialDaemon(ctx, sock); err == nil {
		return fmt.Errorf("a daemon answers on %s (serving %s): %s", sock, st.DB.Path, stop)
	} else if !errors.Is(err, api.ErrNotRunning) {
		return fmt.Errorf("%w; %s", err, stop)
	}
	before, err := os.Stat(*db)
	if err != nil {
		return err
	}
	var start time.Time
	dropped, err := storage.CompactInPlace(*db, func(tmp string) {
		fmt.Fprintf(stdout, "compacting %s (%s) into %s\n", *db, units.Bytes(uint64(before.Size())), tmp)
		start = time.Now()
	})
	if errors.Is(err, storage.ErrLocked) {
		return fmt.Errorf("%w: a daemon (with another --socket?) or another dstwatch has %s open; %s", err, *db, stop)
	}
	if err != nil {
		return err
	}
	for _, d := range dropped {
		fmt.Fprintf(stdout, "dropped damaged %s: %s\n", d, d.Err)
	}
	after, err := os.Stat(*db)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "compacted %s: %s -> %s (%s freed) in %s\n", *db, units.Bytes(uint64(before.Size())),
		units.Bytes(uint64(after.Size())), units.Bytes(uint64(max(before.Size()-after.Size(), 0))), time.Since(start).Round(time.Millisecond))
	return nil
}
