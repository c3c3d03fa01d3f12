package fleet

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Rollups: hourly and daily sums per host and remote, built in ClickHouse
// from the host's own raw rows, so that a fleet query over a month reads
// 30 daily rows per host and remote instead of 4,320 windows a day.
//
// Who builds them: each host's exporter, for its own rows only, after an
// insert and before it marks the windows exported (so an exported window's
// closed hours are rolled up, or the batch is sent again). An hour is
// closed once the host has exported a window of a later hour, and a day
// once all its hours are, as the local database seals its rollups
// (storage/rollup.go). A rollup is built again whenever its raw rows
// changed: a window sent late into a closed hour, or sent again after the
// bbolt file merged it.
//
// How a rollup is known to be whole and current: its windows_* row is
// inserted after its remotes_* rows, and records raw_version, the highest
// outbox sequence among the raw windows it was built from. Outbox
// sequences only grow, so any change to the raw windows of that hour (or
// day) raises their max(version) above raw_version, and a reader that
// finds them unequal reads the raw rows instead (plan.go). Each build has
// a version of its own, above every earlier build of the same period; a
// reader takes the remotes rows of the newest build that has a windows row.
// A build cut short (ClickHouse or the daemon died in between) has no
// windows row and is never read, and a superseded one is never read again,
// so no FINAL is needed on these tables, which is what makes them fast.
//
// Country and AS of a remote in a rollup are the non-empty ones of the
// window stored last (the highest outbox sequence, kept in country_seq and
// asn_seq for the daily build), as storage's rollups keep them: in the
// order the windows reached them. So a host's fleet answer equals its own
// query when both read rollups, also after a window arrived late.

type tier struct {
	secs             int64
	remotes, windows string // the tier's tables
}

var (
	hourTier = tier{3600, tableRemotesHourly, tableWindowsHourly}
	dayTier  = tier{86400, tableRemotesDaily, tableWindowsDaily}
)

// rollUp builds host's missing or stale rollups of closed hours and days
// from since (Unix seconds) on. It returns the start of the host's open
// hour, the newest it has windows in: every hour before it is rolled up.
func rollUp(ctx context.Context, c clickhouse.Conn, db, host string, since int64) (open int64, built int, err error) {
	h := quote(host)
	var newest uint32
	if err := c.QueryRow(ctx, fmt.Sprintf("SELECT toUInt32(max(window_start)) FROM %s.%s WHERE host = %s", db, tableWindows, h)).Scan(&newest); err != nil {
		return 0, 0, fmt.Errorf("roll up: %w", err)
	}
	open = int64(newest) - int64(newest)%hourTier.secs
	if since <= 0 {
		// The whole history: raw_hours as the windows say, for windows
		// sent before it existed (schema 1) or whose row there was lost.
		if err := c.Exec(ctx, fmt.Sprintf(`INSERT INTO %[1]s.%[2]s (host, hour, version)
	SELECT host, toDateTime(intDiv(toUInt32(window_start), 3600) * 3600) AS h, max(version) FROM %[1]s.%[3]s WHERE host = %[4]s GROUP BY host, h`,
			db, tableRawHours, tableWindows, h)); err != nil {
			return 0, 0, fmt.Errorf("roll up: %w", err)
		}
	}
	since = max(since, 0)
	if since >= open {
		return open, 0, nil
	}
	for _, t := range []tier{hourTier, dayTier} {
		from := since - since%t.secs
		to := open - open%t.secs // periods ending by open
		if from >= to {
			continue
		}
		raw, err := pairs(ctx, c, fmt.Sprintf(`SELECT toUInt32(intDiv(toUInt32(window_start), %[4]d) * %[4]d) AS p, max(version)
	FROM %[1]s.%[2]s WHERE host = %[3]s AND window_start >= toDateTime(%[5]d) AND window_start < toDateTime(%[6]d) GROUP BY p ORDER BY p`,
			db, tableWindows, h, t.secs, from, to))
		if err != nil {
			return 0, built, fmt.Errorf("roll up: %w", err)
		}
		rolled, err := pairs(ctx, c, fmt.Sprintf(`SELECT toUInt32(period_start), max(raw_version) FROM %s.%s
	WHERE host = %s AND period_start >= toDateTime(%d) AND period_start < toDateTime(%d) GROUP BY period_start`, db, t.windows, h, from, to))
		if err != nil {
			return 0, built, fmt.Errorf("roll up: %w", err)
		}
		for _, p := range raw.keys {
			if rolled.m[p] >= raw.m[p] {
				continue
			}
			if err := buildRollup(ctx, c, db, host, t, p); err != nil {
				return 0, built, err
			}
			built++
		}
	}
	return open, built, nil
}

// buildRollup builds host's rollup of tier t at start: an hour from the raw
// rows (read with FINAL, as every raw read is), a day from the hour's
// current builds.
func buildRollup(ctx context.Context, c clickhouse.Conn, db, host string, t tier, start int64) error {
	h := quote(host)
	period := fmt.Sprintf("toDateTime(%d)", start)
	var v uint64
	if err := c.QueryRow(ctx, fmt.Sprintf(`SELECT toUInt64(max(v)) FROM (
	SELECT max(version) AS v FROM %[1]s.%[2]s WHERE host = %[4]s AND period_start = %[5]s
	UNION ALL SELECT max(version) AS v FROM %[1]s.%[3]s WHERE host = %[4]s AND period_start = %[5]s)`,
		db, t.remotes, t.windows, h, period)).Scan(&v); err != nil {
		return fmt.Errorf("roll up %s %d: %w", t.windows, start, err)
	}
	v++
	var remotes, windows, count, rawVersion, cond, cseq, aseq string
	rng := func(col string) string {
		return fmt.Sprintf("host = %s AND %s >= %s AND %s < toDateTime(%d)", h, col, period, col, start+t.secs)
	}
	if t == hourTier {
		remotes, windows = db+"."+tableRemotes+" FINAL", db+"."+tableWindows+" FINAL"
		count, rawVersion, cseq, aseq = "toUInt32(count())", "max(version)", "version", "version"
		cond = rng("window_start")
	} else {
		remotes, windows = db+"."+tableRemotesHourly, db+"."+tableWindowsHourly
		count, rawVersion, cseq, aseq = "toUInt32(sum(windows))", "max(raw_version)", "country_seq", "asn_seq"
		cond = fmt.Sprintf("%s AND (period_start, version) IN (SELECT period_start, max(version) FROM %s WHERE %s GROUP BY period_start)",
			rng("period_start"), windows, rng("period_start"))
	}
	sqls := []string{
		fmt.Sprintf(`INSERT INTO %[1]s.%[2]s (host, period_start, addr, country, asn, as_org, tx_packets, tx_bytes, rx_packets, rx_bytes, country_seq, asn_seq, version)
	SELECT host, %[3]s, addr, argMaxIf(country, %[4]s, country != ''), argMaxIf(asn, %[8]s, asn != 0), argMaxIf(as_org, %[8]s, asn != 0),
	sum(tx_packets), sum(tx_bytes), sum(rx_packets), sum(rx_bytes), toUInt64(maxIf(%[4]s, country != '')), toUInt64(maxIf(%[8]s, asn != 0)), toUInt64(%[5]d)
	FROM %[6]s WHERE %[7]s GROUP BY host, addr`,
			db, t.remotes, period, cseq, v, remotes, cond, aseq),
		// Last: this row says the build above is whole.
		fmt.Sprintf(`INSERT INTO %[1]s.%[2]s (host, period_start, windows, frames, tallied, non_ip, transit, malformed, excluded, local, drops, late, folded,
	oversize, spoofed, overflow, partial, other_tx_packets, other_tx_bytes, other_rx_packets, other_rx_bytes, raw_version, version)
	SELECT host, %[3]s, %[4]s, sum(frames), sum(tallied), sum(non_ip), sum(transit), sum(malformed), sum(excluded), sum(local), sum(drops), sum(late), sum(folded),
	sum(oversize), sum(spoofed), sum(overflow), groupBitOr(partial), sum(other_tx_packets), sum(other_tx_bytes), sum(other_rx_packets), sum(other_rx_bytes), %[5]s, toUInt64(%[6]d) FROM %[7]s WHERE %[8]s GROUP BY host`,
			db, t.windows, period, count, rawVersion, v, windows, cond),
	}
	for _, q := range sqls {
		if err := c.Exec(ctx, q); err != nil {
			return fmt.Errorf("roll up %s %d: %w", t.windows, start, err)
		}
	}
	return nil
}

// ordered is a map read from (UInt32, UInt64) rows, with its keys in the
// order read.
type ordered struct {
	keys []int64
	m    map[int64]uint64
}

func pairs(ctx context.Context, c clickhouse.Conn, sql string) (ordered, error) {
	o := ordered{m: map[int64]uint64{}}
	rows, err := c.Query(ctx, sql)
	if err != nil {
		return o, err
	}
	defer rows.Close()
	for rows.Next() {
		var k uint32
		var v uint64
		if err := rows.Scan(&k, &v); err != nil {
			return o, err
		}
		o.keys = append(o.keys, int64(k))
		o.m[int64(k)] = v
	}
	return o, rows.Err()
}
