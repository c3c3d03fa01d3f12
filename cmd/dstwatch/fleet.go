package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dstwatch/dstwatch/api"
	dstwatchd "github.com/dstwatch/dstwatch/daemon"
	"github.com/dstwatch/dstwatch/fleet"
	"github.com/dstwatch/dstwatch/query"
)

// The export to ClickHouse (package fleet) and query --clickhouse: flags,
// status, and the fleet answers printed as query's. The daemon's hooks are
// in package daemon (fleet.go).

type fleetFlags struct {
	url, passFile, hostName, cluster *string
}

func addFleetFlags(fs *flag.FlagSet) *fleetFlags {
	return &fleetFlags{
		url:      fs.String("clickhouse", "", "export every stored window to ClickHouse at this `url`, clickhouse://HOST:9000/DATABASE (native protocol; docs/fleet.md)"),
		passFile: fs.String("clickhouse-password-file", "", "read the ClickHouse user (first line) and password (second line; a file of one line is the password of user default) from this `file`"),
		hostName: fs.String("host-name", "", "the host `name` every exported row carries (default: the machine's host name)"),
		cluster:  fs.String("clickhouse-cluster", "", "also create Distributed tables remotes_all, windows_all, services_all and service_remotes_all over this ClickHouse `cluster`"),
	}
}

// target reads --clickhouse and its password file.
func (f *fleetFlags) target() (*fleet.Target, error) {
	if *f.url == "" {
		if *f.passFile != "" || *f.cluster != "" {
			return nil, fmt.Errorf("%w: --clickhouse-password-file and --clickhouse-cluster need --clickhouse", errUsage)
		}
		return nil, nil
	}
	t, err := fleet.ParseURL(*f.url)
	if err != nil {
		return nil, fmt.Errorf("%w: --clickhouse: %v", errUsage, err)
	}
	if *f.passFile != "" {
		b, err := os.ReadFile(*f.passFile)
		if err != nil {
			return nil, fmt.Errorf("--clickhouse-password-file: %w", err)
		}
		if err := fleet.ReadPasswordFile(&t, b); err != nil {
			return nil, fmt.Errorf("%w: --clickhouse-password-file %s: %v", errUsage, *f.passFile, err)
		}
	}
	return &t, nil
}

func (f *fleetFlags) apply(cfg *dstwatchd.Config) error {
	t, err := f.target()
	if err != nil || t == nil {
		if err == nil && *f.hostName != "" {
			return fmt.Errorf("%w: --host-name needs --clickhouse", errUsage)
		}
		return err
	}
	cfg.Export, cfg.ExportCluster, cfg.HostName = t, *f.cluster, *f.hostName
	if cfg.HostName == "" {
		if cfg.HostName, err = os.Hostname(); err != nil {
			return fmt.Errorf("host name: %w (give one with --host-name)", err)
		}
	}
	return nil
}

func writeExportStatus(w io.Writer, e *api.ExportStats) {
	if e == nil {
		return
	}
	fmt.Fprintf(w, "export\tclickhouse %s as host %s: %d windows exported, %d behind (%ds), %d errors",
		e.Target, e.Host, e.Exported, e.LagWindows, e.LagSeconds, e.Errors)
	if e.Unexported > 0 {
		fmt.Fprintf(w, ", %d pruned before export", e.Unexported)
	}
	fmt.Fprintln(w)
	if e.Failing != "" {
		fmt.Fprintf(w, "export failing\t%s\n", e.Failing)
	}
}

// queryFleetFlags are query's flags for asking ClickHouse instead.
type queryFleetFlags struct {
	ff          *fleetFlags
	hosts       listFlag
	distributed *bool
}

func addQueryFleetFlags(fs *flag.FlagSet) *queryFleetFlags {
	q := &queryFleetFlags{ff: &fleetFlags{
		url:      fs.String("clickhouse", "", "ask the fleet's ClickHouse at this `url` (clickhouse://HOST:9000/DATABASE) instead of this host's database"),
		passFile: fs.String("clickhouse-password-file", "", "the ClickHouse user and password `file`, as for run"),
		cluster:  new(string),
	}}
	fs.Var(&q.hosts, "host", "with --clickhouse: only the rows of this host `name`; repeatable")
	q.distributed = fs.Bool("distributed", false, "with --clickhouse: read the Distributed tables (remotes_all, ...) over every shard")
	return q
}

func (q *queryFleetFlags) given() bool { return *q.ff.url != "" }

// parseBy is query.ParseBy, plus host for the fleet.
func (q *queryFleetFlags) parseBy(s string) (query.By, error) {
	if q.given() && strings.EqualFold(s, string(fleet.ByHost)) {
		return fleet.ByHost, nil
	}
	return query.ParseBy(s)
}

func (q *queryFleetFlags) check() error {
	if !q.given() && (len(q.hosts) > 0 || *q.distributed || *q.ff.passFile != "") {
		return fmt.Errorf("%w: --host, --distributed and --clickhouse-password-file need --clickhouse", errUsage)
	}
	return nil
}

// queryFleet answers query from ClickHouse and prints it as query prints
// a local answer.
func queryFleet(ctx context.Context, stdout, stderr io.Writer, q *queryFleetFlags, o queryOpts, sf *svcFlags) error {
	t, err := q.ff.target()
	if err != nil {
		return err
	}
	r, err := fleet.Open(ctx, *t, *q.distributed)
	if err != nil {
		return err
	}
	defer r.Close()
	fq := fleet.Question{Question: query.Question{By: o.by, Filter: o.filter, Sort: o.sort, Top: o.top},
		Hosts: q.hosts, From: o.rng.From, To: o.rng.To, Last: o.rng.Last}
	if o.by == query.ByService {
		f, err := sf.filter(o.filter)
		if err != nil {
			return err
		}
		rows, sum, err := r.Services(ctx, fq, f)
		if err != nil {
			return err
		}
		return writeServices(stdout, rows, sum, o, f, func() error { return noFleetWindow(stdout, o) })
	}
	if o.by == query.ByWindow {
		ws, err := r.Windows(ctx, fq)
		if err != nil {
			return err
		}
		if len(ws) == 0 && o.format == "table" {
			return noFleetWindow(stdout, o)
		}
		return writeQuery(stdout, ws, o)
	}
	rows, sum, err := r.Aggregate(ctx, fq)
	if err != nil {
		return err
	}
	if sum.Units() == 0 && o.format == "table" {
		return noFleetWindow(stdout, o)
	}
	return writeAnswer(stdout, stderr, rows, sum, o)
}

func noFleetWindow(stdout io.Writer, o queryOpts) error {
	if o.rng.Last > 0 {
		fmt.Fprintln(stdout, "no exported window")
	} else {
		fmt.Fprintf(stdout, "no exported window from %s to %s\n", fmtTime(o.rng.From, o.loc), fmtTime(o.rng.To, o.loc))
	}
	return nil
}

// hostJSON is one row of --by host in JSON.
type hostJSON struct {
	Host    string `json:"host"`
	Other   bool   `json:"other,omitempty"`
	Remotes int    `json:"remotes"`
	query.CountsJSON
}

func hostRowsJSON(rows []query.Row) []hostJSON {
	out := make([]hostJSON, 0, len(rows))
	for _, r := range rows {
		out = append(out, hostJSON{r.Key, r.IsOther(), r.Remotes, query.ToCounts(r.Counts)})
	}
	return out
}
