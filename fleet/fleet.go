// Package fleet owns dstwatch's export to ClickHouse and the fleet queries
// over it: the tables and their schema version, the exporter that sends
// every stored window from the bbolt outbox (storage's bucket "outbox") to
// ClickHouse off the counting path, and the reader that answers query's
// questions over many hosts. It speaks ClickHouse's native protocol
// through clickhouse-go, in SQL that ClickHouse 18.16 (Debian 12) and
// current releases both accept.
//
// Every row carries the host that wrote it and the outbox sequence number
// of the copy it came from. The tables are ReplacingMergeTree(version)
// ordered by host, window start (and address or service), and are always
// read with FINAL: a window sent twice (a crash between the insert and the
// outbox update) is read once, and a window merged after it was sent (the
// bbolt file merges a window stored twice) is read as its newer, whole
// copy. Insert deduplication would not do: 18.16 has it only for
// replicated tables, and a merged window is a different block anyway.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// SchemaVersion is the version of the tables this code writes and reads;
// it is recorded in table dstwatch_schema.
// Version 2 added the rollup tables (rollup.go).
const SchemaVersion = 2

// ErrSchemaTooNew means the database holds tables of a newer dstwatch.
var ErrSchemaTooNew = errors.New("clickhouse schema is newer than this dstwatch")

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Target is where to connect: parsed from a clickhouse://HOST:PORT/DATABASE
// URL, with the credentials from elsewhere.
type Target struct {
	Addrs    []string
	Database string
	User     string
	Password string
}

// ParseURL reads clickhouse://HOST[:PORT]/DATABASE (port 9000 when not
// given; database dstwatch when not given). Credentials
// in the URL are refused: they would show in ps and in shell histories.
func ParseURL(s string) (Target, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "clickhouse" || u.Host == "" {
		return Target{}, fmt.Errorf("clickhouse url %q: want clickhouse://HOST:9000/DATABASE", s)
	}
	if u.User != nil {
		return Target{}, fmt.Errorf("clickhouse url %q: user and password do not belong in the url; put them in a password file", s)
	}
	db := strings.Trim(u.Path, "/")
	if db == "" {
		db = "dstwatch"
	}
	if !identRE.MatchString(db) {
		return Target{}, fmt.Errorf("clickhouse url %q: database %q: want letters, digits and _", s, db)
	}
	t := Target{Database: db, User: "default"}
	h := u.Host
	if u.Port() == "" {
		h = net.JoinHostPort(u.Hostname(), "9000")
	}
	t.Addrs = []string{h}
	return t, nil
}

// ReadPasswordFile reads a credentials file: the user name on the first
// line and the password on the second (a file of one line is the password
// of user "default").
func ReadPasswordFile(t *Target, data []byte) error {
	lines := strings.Split(strings.TrimRight(string(data), "\r\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], "\r")
	}
	switch len(lines) {
	case 1:
		t.Password = lines[0]
	case 2:
		t.User, t.Password = strings.TrimSpace(lines[0]), lines[1]
		if t.User == "" {
			return errors.New("password file: empty user name on the first line")
		}
	default:
		return errors.New("password file: want the user on the first line and the password on the second")
	}
	return nil
}

// open connects to database db: "default" for the exporter, which may have
// to create the database; the fleet's own for readers, so that a user
// allowed only that database can query.
func (t Target) open(db string) (clickhouse.Conn, error) {
	return clickhouse.Open(&clickhouse.Options{
		Addr:        t.Addrs,
		Auth:        clickhouse.Auth{Database: db, Username: t.User, Password: t.Password},
		DialTimeout: 5 * time.Second,
		ReadTimeout: 60 * time.Second,
	})
}

// The tables. Only types 18.16 knows: addresses as FixedString(16) (IPv4
// mapped into IPv6, as IPv6StringToNum makes them), countries as String.
const (
	tableRemotes  = "remotes"
	tableWindows  = "windows"
	tableServices = "services"
	tableSvcTop   = "service_remotes"
	tableSchema   = "dstwatch_schema"

	// The rollups (rollup.go): per host, hour or UTC day, and remote.
	tableRemotesHourly = "remotes_hourly"
	tableRemotesDaily  = "remotes_daily"
	tableWindowsHourly = "windows_hourly"
	tableWindowsDaily  = "windows_daily"
	// raw_hours: per host and hour, the highest version among its raw
	// windows, written before the windows themselves (insert.go), so
	// that a reader checks its rollups against a few rows per hour
	// instead of every window's (plan.go).
	tableRawHours = "raw_hours"
)

// rollupRemotes and rollupWindows are the columns of a tier's two tables.
// Plain MergeTree, not Replacing: every build of a rollup has a version of
// its own, and readers take the rows of the newest build whose windows row
// exists (rollup.go), so a build cut short or superseded is never read and
// a merge never mixes two builds.
const (
	rollupRemotes = `(
	host String, period_start DateTime,
	addr FixedString(16), country String, asn UInt32, as_org String,
	tx_packets UInt64, tx_bytes UInt64, rx_packets UInt64, rx_bytes UInt64,
	country_seq UInt64, asn_seq UInt64, version UInt64
) ENGINE = MergeTree PARTITION BY toYYYYMM(period_start) ORDER BY (host, period_start, addr)`
	rollupWindows = `(
	host String, period_start DateTime, windows UInt32,
	frames UInt64, tallied UInt64, non_ip UInt64, transit UInt64,
	malformed UInt64, excluded UInt64, local UInt64, drops UInt64, late UInt64, folded UInt64,
	oversize UInt64, spoofed UInt64, overflow UInt64, partial UInt8,
	other_tx_packets UInt64, other_tx_bytes UInt64, other_rx_packets UInt64, other_rx_bytes UInt64,
	raw_version UInt64, version UInt64
) ENGINE = MergeTree PARTITION BY toYYYYMM(period_start) ORDER BY (host, period_start)`
)

var ddl = []struct{ name, body string }{
	{tableSchema, `(version UInt32, applied DateTime) ENGINE = MergeTree ORDER BY version`},
	{tableRemotes, `(
	host String, window_start DateTime, window_seconds UInt32,
	addr FixedString(16), country String, asn UInt32, as_org String,
	tx_packets UInt64, tx_bytes UInt64, rx_packets UInt64, rx_bytes UInt64,
	version UInt64
) ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(window_start) ORDER BY (host, window_start, addr)`},
	{tableWindows, `(
	host String, window_start DateTime, window_seconds UInt32, geo_build DateTime,
	remotes UInt32, frames UInt64, tallied UInt64, non_ip UInt64, transit UInt64,
	malformed UInt64, excluded UInt64, local UInt64, drops UInt64, late UInt64, folded UInt64,
	oversize UInt64, spoofed UInt64, overflow UInt64, partial UInt8,
	other_tx_packets UInt64, other_tx_bytes UInt64, other_rx_packets UInt64, other_rx_bytes UInt64,
	version UInt64
) ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(window_start) ORDER BY (host, window_start)`},
	{tableServices, `(
	host String, window_start DateTime, window_seconds UInt32,
	proto String, side String, port UInt16, remotes UInt32,
	tx_packets UInt64, tx_bytes UInt64, rx_packets UInt64, rx_bytes UInt64,
	version UInt64
) ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(window_start) ORDER BY (host, window_start, proto, side, port)`},
	{tableSvcTop, `(
	host String, window_start DateTime, window_seconds UInt32,
	proto String, side String, port UInt16,
	addr FixedString(16), country String, asn UInt32, as_org String,
	tx_packets UInt64, tx_bytes UInt64, rx_packets UInt64, rx_bytes UInt64,
	version UInt64
) ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(window_start) ORDER BY (host, window_start, proto, side, port, addr)`},
	{tableRemotesHourly, rollupRemotes},
	{tableRemotesDaily, rollupRemotes},
	{tableWindowsHourly, rollupWindows},
	{tableWindowsDaily, rollupWindows},
	{tableRawHours, `(host String, hour DateTime, version UInt64)
	ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(hour) ORDER BY (host, hour)`},
}

// ensureSchema creates the database and the tables that are missing,
// records the schema version, and refuses a newer one. With cluster set it
// also creates <table>_all, Distributed tables over that cluster's shards.
func ensureSchema(ctx context.Context, c clickhouse.Conn, db, cluster string) error {
	if err := c.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	for _, t := range ddl {
		if err := c.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s %s", db, t.name, t.body)); err != nil {
			return fmt.Errorf("create table %s.%s: %w", db, t.name, err)
		}
	}
	var v uint32
	if err := c.QueryRow(ctx, fmt.Sprintf("SELECT toUInt32(max(version)) FROM %s.%s", db, tableSchema)).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case v > SchemaVersion:
		return fmt.Errorf("%w: database %s has version %d, this dstwatch knows up to %d; upgrade dstwatch", ErrSchemaTooNew, db, v, SchemaVersion)
	case v < SchemaVersion:
		b, err := c.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (version, applied)", db, tableSchema))
		if err != nil {
			return fmt.Errorf("record schema version: %w", err)
		}
		if err := b.Append(uint32(SchemaVersion), time.Now().UTC().Truncate(time.Second)); err != nil {
			return fmt.Errorf("record schema version: %w", err)
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("record schema version: %w", err)
		}
	}
	if cluster != "" {
		if !identRE.MatchString(cluster) {
			return fmt.Errorf("cluster %q: want letters, digits and _", cluster)
		}
		for _, t := range []string{tableRemotes, tableWindows, tableServices, tableSvcTop,
			tableRemotesHourly, tableRemotesDaily, tableWindowsHourly, tableWindowsDaily, tableRawHours} {
			q := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %[1]s.%[2]s_all AS %[1]s.%[2]s ENGINE = Distributed(%[3]s, %[1]s, %[2]s)", db, t, cluster)
			if err := c.Exec(ctx, q); err != nil {
				return fmt.Errorf("create table %s.%s_all: %w", db, t, err)
			}
		}
	}
	return nil
}

// quote is a ClickHouse string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
