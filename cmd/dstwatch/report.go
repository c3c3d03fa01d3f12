package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/dstwatch/dstwatch/internal/safefile"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/reclog"
	"github.com/dstwatch/dstwatch/report"
	"github.com/dstwatch/dstwatch/window"
)

const reportHelp = `Usage: dstwatch report [flags]

Writes a report of a period: totals each way; the top remotes, countries,
ASes and services; the busiest windows; traffic over time; and notes on the
data's quality (kernel drops, remotes folded by the caps, gaps when no
daemon ran). Its numbers are those of 'dstwatch query' over the same range.

Periods are whole and end before today: day is yesterday, week the seven
days before today, month the last calendar month (all local time). --from
and --to take the times query takes and override --period.

--format text is for a terminal or a cron mail; --format html writes one
self-contained file (no scripts, nothing fetched) with SVG charts: traffic
over time, the top countries as bars and a world map. The map is a tile
grid, one square per country placed roughly where it lies, coloured by
bytes: an honest overview that needs no map data.

--mail-to sends the report instead of printing it, over SMTP: TLS from the
start on port 465, otherwise STARTTLS when the server offers it, and
required unless --smtp-insecure; with --smtp-user, AUTH PLAIN over that TLS
(the password read from a file).

Examples:
  dstwatch report                                   # yesterday, as text
  dstwatch report --period week --format html > week.html
  dstwatch report --from 2026-11-01 --to 2026-11-15 --top 20
  dstwatch report --period day --mail-to ops@example.org --mail-from dstwatch@example.org \
      --smtp mail.example.org:587 --smtp-user dstwatch --smtp-password-file /etc/dstwatch/smtp.pw
`

func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report", reportHelp, stdout)
	db := fs.String("db", defaultDB(), "bbolt database `file`")
	socket := fs.String("socket", "", "the daemon's API socket `path` (default: dstwatch.sock beside --db)")
	period := fs.String("period", "day", "the `period`: day, week or month (the last complete one)")
	from := fs.String("from", "", "start of the range, inclusive: a `time` as query takes (overrides --period)")
	to := fs.String("to", "", "end of the range, exclusive: a `time` (default with --from: now)")
	format := fs.String("format", "text", "output: text or html")
	top := fs.Int("top", 10, "rows in each top table; the rest are summed as 'other'")
	utc := fs.Bool("utc", false, "show times in UTC instead of local time")
	out := fs.String("o", "", "write to this `file` instead of stdout")
	mailTo := fs.String("mail-to", "", "send the report to these `addresses` (comma-separated) instead of printing it")
	mailFrom := fs.String("mail-from", "", "the sender `address` (default: dstwatch@ this host)")
	smtpAddr := fs.String("smtp", "localhost:25", "SMTP server `host:port`")
	smtpUser := fs.String("smtp-user", "", "SMTP AUTH PLAIN `user` (needs TLS)")
	smtpPass := fs.String("smtp-password-file", "", "read the SMTP password from this `file`")
	smtpCA := fs.String("smtp-ca-file", "", "trust the SMTP server's certificate if issued by the CAs in this PEM `file` (default: the system's)")
	smtpInsecure := fs.Bool("smtp-insecure", false, "send even when the server offers no STARTTLS (in clear)")
	if err := parse(fs, args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if *format != "text" && *format != "html" {
		return fmt.Errorf("%w: --format %q: want text or html", errUsage, *format)
	}
	if *top < 1 {
		return fmt.Errorf("%w: --top must be at least 1", errUsage)
	}
	loc := time.Local
	if *utc {
		loc = time.UTC
	}
	now := time.Now()
	var rfrom, rto time.Time
	var err error
	if *from != "" || *to != "" {
		if given["period"] {
			return fmt.Errorf("%w: --period excludes --from and --to", errUsage)
		}
		if *from == "" {
			return fmt.Errorf("%w: --to needs --from", errUsage)
		}
		if rfrom, err = parseTime("--from", *from, now, loc); err != nil {
			return err
		}
		rto = now
		if *to != "" {
			if rto, err = parseTime("--to", *to, now, loc); err != nil {
				return err
			}
		}
	} else if rfrom, rto, err = periodRange(*period, now, loc); err != nil {
		return err
	}
	if !rto.After(rfrom) {
		return fmt.Errorf("%w: --to must be after --from", errUsage)
	}
	var mail *report.Mail
	if *mailTo != "" {
		if mail, err = mailConfig(*mailTo, *mailFrom, *smtpAddr, *smtpUser, *smtpPass, *smtpCA, *smtpInsecure); err != nil {
			return err
		}
	} else if given["smtp"] || given["smtp-user"] || given["smtp-password-file"] || given["mail-from"] || given["smtp-insecure"] || given["smtp-ca-file"] {
		return fmt.Errorf("%w: the SMTP flags need --mail-to", errUsage)
	}

	if *out != "" {
		// Before the database is read: a refused -o fails at once.
		if err := reclog.CheckText(*out); err != nil {
			return fmt.Errorf("-o: %w", err)
		}
	}
	rd, _, done, err := openReader(ctx, *db, *socket, given["db"])
	if err != nil {
		return err
	}
	defer done()
	rng := query.Range{From: rfrom, To: rto}
	asked, err := fitRange(ctx, rd, &rng) // times.go
	if err != nil {
		return err
	}
	r, err := report.Collect(ctx, rd, rng.From, rng.To, now, report.Options{Top: *top})
	if err != nil {
		return err
	}
	if r.Windows == 0 && r.Summary.Units() == 0 {
		u, err := rd.Usage(ctx)
		if err != nil {
			return err
		}
		raw := u[window.Raw]
		r.Stored = &report.Stored{Windows: raw.Units, First: raw.First, Last: raw.Last}
		if rng != asked {
			// Narrowed to nothing: the range asked for is the report's,
			// and the notes say where the data is instead of a gap.
			r.From, r.To, r.Gaps = asked.From, asked.To, nil
		}
	}
	var body bytes.Buffer
	ctype := "text/plain"
	if *format == "html" {
		ctype = "text/html"
		err = r.WriteHTML(&body, loc)
	} else {
		err = r.WriteText(&body, loc)
	}
	if err != nil {
		return err
	}
	if mail != nil {
		msg := report.Message(mail.From, mail.To, r.Title(loc), ctype, body.Bytes(), now)
		if err := mail.Send(msg); err != nil {
			if errors.Is(err, report.ErrNoSTARTTLS) {
				return fmt.Errorf("%w (--smtp-insecure allows it)", err)
			}
			return err
		}
		fmt.Fprintf(stderr, "dstwatch report: sent to %s\n", strings.Join(mail.To, ", "))
		return nil
	}
	if *out != "" {
		// Private (reports list addresses), and written whole through a
		// new file and a rename: never through a link planted at *out.
		if err := safefile.WriteFile(*out, body.Bytes(), 0o640); err != nil {
			return fmt.Errorf("-o: %w", err)
		}
		return nil
	}
	_, err = stdout.Write(body.Bytes())
	return err
}

// periodRange is the last complete day, week or month before now's day.
func periodRange(p string, now time.Time, loc *time.Location) (from, to time.Time, err error) {
	y, m, d := now.In(loc).Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, loc)
	switch p {
	case "day":
		return time.Date(y, m, d-1, 0, 0, 0, 0, loc), today, nil
	case "week":
		return time.Date(y, m, d-7, 0, 0, 0, 0, loc), today, nil
	case "month":
		return time.Date(y, m-1, 1, 0, 0, 0, 0, loc), time.Date(y, m, 1, 0, 0, 0, 0, loc), nil
	}
	return from, to, fmt.Errorf("%w: --period %q: want day, week or month", errUsage, p)
}

func mailConfig(to, from, server, user, passFile, caFile string, insecure bool) (*report.Mail, error) {
	m := &report.Mail{Server: server, From: from, User: user, Insecure: insecure}
	for _, a := range strings.Split(to, ",") {
		if a = strings.TrimSpace(a); a != "" {
			m.To = append(m.To, a)
		}
	}
	if len(m.To) == 0 {
		return nil, fmt.Errorf("%w: --mail-to: no address", errUsage)
	}
	_, port, err := net.SplitHostPort(server)
	if err != nil {
		return nil, fmt.Errorf("%w: --smtp %q: want host:port", errUsage, server)
	}
	// 465 is submissions: TLS from the first byte (RFC 8314).
	m.ImplicitTLS = port == "465" || port == "submissions" || port == "smtps"
	if m.From == "" {
		host, _ := os.Hostname()
		m.From = "dstwatch@" + host
	}
	if (user == "") != (passFile == "") {
		return nil, fmt.Errorf("%w: --smtp-user and --smtp-password-file go together", errUsage)
	}
	if passFile != "" {
		b, err := os.ReadFile(passFile)
		if err != nil {
			return nil, fmt.Errorf("--smtp-password-file: %w", err)
		}
		m.Password = strings.TrimRight(string(b), "\r\n")
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--smtp-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--smtp-ca-file %s: no PEM certificate in it", caFile)
		}
		m.TLS = &tls.Config{RootCAs: pool}
	}
	return m, nil
}
