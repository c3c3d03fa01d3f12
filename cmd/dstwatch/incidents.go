package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dstwatch/dstwatch/alert"
	"github.com/dstwatch/dstwatch/api"
)

const incidentsHelp = `Usage: dstwatch incidents [flags]
       dstwatch incidents expire [flags] ID

Lists the alert incidents: the open ones (active, or expiring while their
undo actions run) first, then the history, newest first. Asks the running
daemon over its socket; when none runs, reads the incidents file
(alerts.db beside the database) itself, read-only. A line after the table
counts the incidents the alert limits suppressed, if any.

'incidents expire ID' ends an incident now: its undo actions run (undo
commands, the webhook's "expired" post, the log line) and it closes. The
running daemon does it; when no daemon runs, this command opens the
incidents file and runs the undo actions itself, recorded the same way
(give --rules so that webhooks, whose URLs alerts.db keeps redacted, can
be posted).

Examples:
  dstwatch incidents
  dstwatch incidents --state open --format json
  dstwatch incidents --format csv > incidents.csv
  dstwatch incidents expire 12
  dstwatch incidents expire --rules /etc/dstwatch/rules.yaml 12
`

func cmdIncidents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "expire" {
		return cmdIncidentsExpire(ctx, args[1:], stdout)
	}
	fs := newFlagSet("incidents", incidentsHelp, stdout)
	db, alertsDB, socket := incidentFlags(fs)
	state := fs.String("state", "all", "which incidents: open (active or expiring), closed, or all")
	format := fs.String("format", "table", "output: table, json or csv")
	utc := fs.Bool("utc", false, "show times in UTC instead of local time")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch *state {
	case "open", "closed", "all":
	default:
		return fmt.Errorf("%w: --state %q: want open, closed or all", errUsage, *state)
	}
	switch *format {
	case "table", "json", "csv":
	default:
		return fmt.Errorf("%w: --format %q: want table, json or csv", errUsage, *format)
	}
	list, supp, note, err := listIncidents(ctx, *db, *alertsDB, *socket, *state)
	if err != nil {
		return err
	}
	sortIncidents(list)
	loc := time.Local
	if *utc {
		loc = time.UTC
	}
	switch *format {
	case "json":
		if list == nil {
			list = []*alert.Incident{}
		}
		return encodeJSON(stdout, list)
	case "csv":
		return writeIncidentsCSV(stdout, list)
	}
	if note != "" {
		fmt.Fprintln(stdout, note)
	}
	writeIncidentsTable(stdout, list, loc)
	if supp != nil && supp.Total() > 0 {
		fmt.Fprintln(stdout, describeSuppressed(*supp))
	}
	return nil
}

func incidentFlags(fs *flag.FlagSet) (db, alertsDB, socket *string) {
	db = fs.String("db", defaultDB(), "the daemon's database `file`, to find its socket and alerts.db")
	alertsDB = fs.String("alerts-db", "", "the incidents `file` (default: alerts.db beside --db)")
	socket = fs.String("socket", "", "the daemon's API socket `path` (default: dstwatch.sock beside --db)")
	return
}

func alertsPath(db, alertsDB string) string {
	if alertsDB != "" {
		return alertsDB
	}
	return defaultAlertsDB(db)
}

// listIncidents asks the daemon, or reads the file when no daemon runs or
// the daemon keeps no incidents. It also returns the incidents the limits
// suppressed (nil when unknown).
func listIncidents(ctx context.Context, db, alertsDB, socket, state string) ([]*alert.Incident, *alert.Suppressed, string, error) {
	c, _, err := dialDaemon(ctx, socketFor(socket, db))
	if err == nil {
		list, err := c.Incidents(ctx, state)
		if !errors.Is(err, api.ErrAlertsOff) {
			var supp *alert.Suppressed
			if err == nil {
				if st, serr := c.Status(ctx); serr == nil && st.Alerts != nil {
					supp = &st.Alerts.Suppressed
				}
			}
			return list, supp, "", err
		}
	} else if !errors.Is(err, api.ErrNotRunning) {
		return nil, nil, "", err
	}
	path := alertsPath(db, alertsDB)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Sprintf("no incidents: %s does not exist (no daemon has run with --rules here)", path), nil
	}
	e, err := alert.Open(alert.Options{Path: path, ReadOnly: true})
	if err != nil {
		return nil, nil, "", err
	}
	defer e.CloseReadOnly()
	list, err := e.List(state == "open")
	if err != nil {
		return nil, nil, "", err
	}
	var supp *alert.Suppressed
	if st, err := e.Stats(); err == nil {
		supp = &st.Suppressed
	}
	if state == "closed" {
		out := list[:0]
		for _, inc := range list {
			if inc.State == alert.Closed {
				out = append(out, inc)
			}
		}
		list = out
	}
	return list, supp, "", nil
}

// describeAlerts is one line on the alert limits, for status: "3 open
// incidents, 2 running actions, 5 queued; 280 incidents suppressed over the
// limits (280 per window, 0 active, 0 queue)".
func describeAlerts(st alert.Stats) string {
	s := fmt.Sprintf("%d open incidents (limit %d), %d running actions (limit %d), %d queued (limit %d)",
		st.Active, st.Limits.Active, st.Running, st.Limits.Running, st.Queued, st.Limits.Queued)
	return s + "; " + describeSuppressed(st.Suppressed)
}

// describeSuppressed says how many incidents the limits suppressed.
func describeSuppressed(s alert.Suppressed) string {
	if s.Total() == 0 {
		return "no incidents suppressed over the limits"
	}
	return fmt.Sprintf("%d incidents suppressed over the limits (%d per window, %d active, %d queue; last in the window of %s)",
		s.Total(), s.PerWindow, s.Active, s.Queue, s.Last.UTC().Format(time.RFC3339))
}

// sortIncidents puts open incidents first, oldest first, then the closed
// ones, newest first.
func sortIncidents(list []*alert.Incident) {
	sort.SliceStable(list, func(i, j int) bool {
		oi, oj := list[i].State != alert.Closed, list[j].State != alert.Closed
		if oi != oj {
			return oi
		}
		if oi {
			return list[i].ID < list[j].ID
		}
		return list[i].ID > list[j].ID
	})
}

// actionSummary counts an incident's actions by state: "2 done, 1 failed".
func actionSummary(rs []alert.Result) string {
	counts := map[string]int{}
	for _, r := range rs {
		counts[r.State]++
	}
	var parts []string
	for _, s := range []string{alert.StateDone, alert.StateFailed, alert.StateInterrupted, alert.StateStarted, alert.StatePending} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func writeIncidentsTable(w io.Writer, list []*alert.Incident, loc *time.Location) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no incidents")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tRULE\tKEY\tCC\tPEAK\tTHRESHOLD\tSTARTED\tEXPIRES/ENDED\tACTIONS\tUNDO")
	for _, inc := range list {
		end := fmtTime(inc.Expires, loc)
		if inc.Ended != nil {
			end = fmtTime(*inc.Ended, loc) + " (" + inc.Reason + ")"
		}
		cc := inc.Country
		if cc == "" {
			cc = "--"
		}
		undo := "-"
		if inc.State != alert.Active {
			undo = actionSummary(inc.Undo)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s %s\t%s\t%s\t%s\t%s\n", inc.ID, inc.State, inc.Rule, inc.Key, cc,
			alert.FormatValue(inc.Metric, inc.Peak), inc.Metric, alert.FormatValue(inc.Metric, inc.Threshold),
			fmtTime(inc.Started, loc), end, actionSummary(inc.Actions), undo)
	}
	tw.Flush()
}

var incidentsCSVHeader = []string{"id", "state", "rule", "key", "prefix", "country", "asn", "metric", "value", "peak", "threshold",
	"window", "refires", "started", "expires", "ended", "reason", "actions", "undo"}

func writeIncidentsCSV(w io.Writer, list []*alert.Incident) error {
	cw := csv.NewWriter(w)
	cw.Write(incidentsCSVHeader)
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	t := func(v time.Time) string { return v.UTC().Format(time.RFC3339) }
	for _, inc := range list {
		ended := ""
		if inc.Ended != nil {
			ended = t(*inc.Ended)
		}
		cw.Write([]string{strconv.FormatUint(inc.ID, 10), inc.State, inc.Rule, inc.Key, inc.Prefix, inc.Country,
			strconv.FormatUint(uint64(inc.ASN), 10), string(inc.Metric), f(inc.Value), f(inc.Peak), f(inc.Threshold),
			t(inc.Window), strconv.Itoa(inc.Refires), t(inc.Started), t(inc.Expires), ended, inc.Reason,
			actionSummary(inc.Actions), actionSummary(inc.Undo)})
	}
	cw.Flush()
	return cw.Error()
}

func cmdIncidentsExpire(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("incidents expire", incidentsHelp, stdout)
	db, alertsDB, socket := incidentFlags(fs)
	rules := fs.String("rules", "", "the daemon's rules `file`: without a daemon, the full webhook URLs come from it (alerts.db keeps them redacted)")
	var idArg string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		idArg, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if idArg == "" && len(rest) > 0 {
		idArg, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected argument %q%s", errUsage, rest[0], seeHelp(fs))
	}
	id, err := strconv.ParseUint(idArg, 10, 64)
	if err != nil || id == 0 {
		return fmt.Errorf("%w: incidents expire: want the incident's ID (a positive integer), got %q", errUsage, idArg)
	}
	var inc *alert.Incident
	c, _, err := dialDaemon(ctx, socketFor(*socket, *db))
	switch {
	case err == nil:
		inc, err = c.ExpireIncident(ctx, id)
		if !errors.Is(err, api.ErrAlertsOff) {
			break
		}
		fallthrough // the daemon keeps no incidents: the file is free
	case errors.Is(err, api.ErrNotRunning):
		inc, err = expireOffline(ctx, alertsPath(*db, *alertsDB), *rules, id)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "incident %d (rule %s, %s): %s", inc.ID, inc.Rule, inc.Key, inc.State)
	if inc.Reason != "" {
		fmt.Fprintf(stdout, ", %s", inc.Reason)
	}
	fmt.Fprintln(stdout)
	for _, r := range inc.Undo {
		fmt.Fprintf(stdout, "  %s %s", r.Kind, r.State)
		if len(r.Argv) > 0 {
			fmt.Fprintf(stdout, " %q", r.Argv)
		}
		if r.Exit != nil {
			fmt.Fprintf(stdout, " exit %d", *r.Exit)
		}
		if r.Error != "" {
			fmt.Fprintf(stdout, ": %s", r.Error)
		}
		fmt.Fprintln(stdout)
	}
	return nil
}

// expireOffline runs an incident's undo without a daemon: it opens the
// incidents file read-write (no daemon holds it) and records the undo
// exactly as the daemon would.
func expireOffline(ctx context.Context, path, rules string, id uint64) (*alert.Incident, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no daemon runs and there is no incidents file: %w", err)
	}
	var rs *alert.RuleSet
	if rules != "" {
		var err error
		if rs, err = alert.LoadRules(rules); err != nil {
			return nil, err
		}
	}
	e, err := alert.Open(alert.Options{Path: path})
	if err != nil {
		return nil, err
	}
	if rs != nil {
		e.SetRules(rs)
	}
	inc, err := e.Expire(ctx, id, "expired early by request (no daemon running: run by dstwatch incidents expire)")
	if cerr := e.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if errors.Is(err, alert.ErrNotFound) || errors.Is(err, alert.ErrClosed) {
		err = fmt.Errorf("incident %d: %w", id, err)
	}
	return inc, err
}
