package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	dstwatchd "github.com/dstwatch/dstwatch/daemon"

	"github.com/dstwatch/dstwatch/api"
	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/storage"
	"github.com/dstwatch/dstwatch/window"
)

// offlineStatusJSON is status --format json when no daemon runs.
type offlineStatusJSON struct {
	Running    bool            `json:"running"` // always false here
	Socket     string          `json:"socket"`
	DB         *api.DBStats    `json:"db,omitempty"`          // absent when the file cannot be read
	LastWindow *lastWindowJSON `json:"last_window,omitempty"` // the newest stored window
	Error      string          `json:"error,omitempty"`       // why the database was not read
}

type lastWindowJSON struct {
	Start   string `json:"start"`
	End     string `json:"end"`
	Remotes int    `json:"remotes"`
	query.CountsJSON
}

// offlineStatus answers status from the database when no daemon listens
// on sock, and returns errNotRunning (exit 3) whatever it could read: a
// script keeps its "is it running" answer, a person learns what is stored.
func offlineStatus(w io.Writer, db, sock, format string, loc *time.Location) error {
	notRunning := fmt.Errorf("%w: no daemon answers on %s", errNotRunning, sock)
	out := offlineStatusJSON{Socket: sock}
	stats, last, err := readOffline(db)
	if err != nil {
		out.Error = err.Error()
	} else {
		out.DB = &stats
		if last != nil {
			var c window.Counts
			for _, r := range last.Remotes {
				c.Add(r.Counts)
			}
			c.Add(last.Other)
			out.LastWindow = &lastWindowJSON{last.Start.UTC().Format(time.RFC3339), last.End().UTC().Format(time.RFC3339),
				len(last.Remotes) + int(last.Stats.Folded), query.ToCounts(c)}
		}
	}
	if format == "json" {
		if err := encodeJSON(w, out); err != nil {
			return err
		}
		return notRunning
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "dstwatch\tnot running (no daemon answers on %s); from the database:\n", sock)
	if out.DB == nil {
		fmt.Fprintf(tw, "database\t%s\n", out.Error)
		return errors.Join(tw.Flush(), notRunning)
	}
	writeDBStatus(tw, api.Status{DB: stats}, loc)
	if lw := out.LastWindow; lw != nil {
		c := lw.Counts()
		fmt.Fprintf(tw, "newest\twindow %s, %s, %d remotes, tx %s in %s packets, rx %s in %s packets\n",
			fmtTime(last.Start, loc), last.Length, lw.Remotes, units.Bytes(c.TxBytes), units.Count(c.TxPackets),
			units.Bytes(c.RxBytes), units.Count(c.RxPackets))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return notRunning
}

// readOffline reads the database's status and its newest window, read-only
// and with a short timeout: a daemon with another --socket holds its lock.
func readOffline(path string) (api.DBStats, *window.Window, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return api.DBStats{}, nil, fmt.Errorf("%s: no such file (nothing stored yet, or give --db)", path)
		}
		return api.DBStats{}, nil, err
	}
	d, err := storage.Open(path, storage.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, storage.ErrLocked) {
		return api.DBStats{}, nil, fmt.Errorf("%w: a process holds it; if dstwatch runs with another --socket, give it here", err)
	}
	if err != nil {
		return api.DBStats{}, nil, err
	}
	defer d.Close()
	stats, err := dstwatchd.DBStatus(d)
	if err != nil {
		return stats, nil, err
	}
	var last *window.Window
	err = d.Last(context.Background(), 1, func(w *window.Window) error {
		last = w
		return nil
	})
	return stats, last, err
}
