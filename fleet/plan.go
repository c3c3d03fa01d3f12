package fleet

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// A plan says which tier answers each part of a range, for each host, as
// storage's Span does for one file: a UTC day that lies within the range
// from its daily rollup, a whole hour from its hourly rollup, and the rest
// (the edges, and every hour whose rollup is missing or stale) from the raw
// windows. A rollup is used only when its raw_version equals the highest
// version among its period's raw windows now (rollup.go), so the answer is
// always the raw windows' answer; only the country and AS a remote is
// counted under can differ, where a remote changed them within an hour, as
// in the local database's rollups.
type plan struct {
	raw, hour, day string // conditions on each tier's tables; "" reads none of it
	// The raw remote rows are read without FINAL where that gives the same
	// rows (rawClean), with it where it may not (rawFinal); see clean.
	rawClean, rawFinal string
}

// rollup is one host's rollup of one period: its build's version and the
// raw version it was built from.
type rollup struct{ raw, version uint64 }

func hostCond(hosts []string) string {
	if len(hosts) == 0 {
		return "1"
	}
	hs := make([]string, len(hosts))
	for i, h := range hosts {
		hs[i] = quote(h)
	}
	return "host IN (" + strings.Join(hs, ", ") + ")"
}

func between(col string, from, to int64) string {
	return fmt.Sprintf("%s >= toDateTime(%d) AND %s < toDateTime(%d)", col, from, col, to)
}

// plan reads which rollups exist and are current for the range and the
// hosts asked. Three small queries: the raw windows' max(version) per host
// and hour (from raw_hours: a row per hour and insert until merged, not
// one per window), and the newest build of each hourly and daily rollup.
func (r *Reader) plan(ctx context.Context, q Question) (plan, error) {
	from, to := ceilUnix(q.From), ceilUnix(q.To)
	h0, h1 := ceilTo(from, 3600), to-to%3600
	if q.Last > 0 || !r.rollups || r.rawOnly || h0 >= h1 {
		w, err := r.where(ctx, q)
		if err != nil {
			return plan{}, err
		}
		return r.clean(ctx, plan{raw: w})
	}
	d0, d1 := ceilTo(h0, 86400), h1-h1%86400
	if d0 >= d1 {
		d0, d1 = h1, h1 // no whole day
	}
	hc := hostCond(q.Hosts)
	type hostPeriod struct {
		host string
		p    int64
	}
	rawMax := map[hostPeriod]uint64{}
	var hosts []string
	var periods = map[string][]int64{}
	rows, err := r.conn.Query(ctx, fmt.Sprintf(`SELECT host, toUInt32(hour) AS p, max(version)
	FROM %s.%s%s WHERE %s AND %s GROUP BY host, p ORDER BY host, p`, r.db, tableRawHours, r.suffix, hc, between("hour", h0, h1)))
	if err != nil {
		return plan{}, fmt.Errorf("clickhouse: %w", err)
	}
	for rows.Next() {
		var h string
		var p uint32
		var v uint64
		if err := rows.Scan(&h, &p, &v); err != nil {
			rows.Close()
			return plan{}, fmt.Errorf("clickhouse: %w", err)
		}
		if len(hosts) == 0 || hosts[len(hosts)-1] != h {
			hosts = append(hosts, h)
		}
		rawMax[hostPeriod{h, int64(p)}] = v
		periods[h] = append(periods[h], int64(p))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return plan{}, fmt.Errorf("clickhouse: %w", err)
	}
	builds := func(table string, from, to int64) (map[hostPeriod]rollup, error) {
		m := map[hostPeriod]rollup{}
		if from >= to {
			return m, nil
		}
		rows, err := r.conn.Query(ctx, fmt.Sprintf(`SELECT host, toUInt32(period_start), argMax(raw_version, version), max(version)
	FROM %s.%s%s WHERE %s AND %s GROUP BY host, period_start`, r.db, table, r.suffix, hc, between("period_start", from, to)))
		if err != nil {
			return nil, fmt.Errorf("clickhouse: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var h string
			var p uint32
			var b rollup
			if err := rows.Scan(&h, &p, &b.raw, &b.version); err != nil {
				return nil, fmt.Errorf("clickhouse: %w", err)
			}
			m[hostPeriod{h, int64(p)}] = b
		}
		return m, rows.Err()
	}
	hourly, err := builds(tableWindowsHourly, h0, h1)
	if err != nil {
		return plan{}, err
	}
	daily, err := builds(tableWindowsDaily, d0, d1)
	if err != nil {
		return plan{}, err
	}

	var rawParts, hourTuples, dayTuples []string
	if from < h0 {
		rawParts = append(rawParts, between("window_start", from, h0))
	}
	if h1 < to {
		rawParts = append(rawParts, between("window_start", h1, to))
	}
	tuple := func(h string, p int64, v uint64) string { return fmt.Sprintf("(%s, %d, %d)", quote(h), p, v) }
	for _, h := range hosts {
		ps := periods[h]
		dayMax := map[int64]uint64{}
		for _, p := range ps {
			if p >= d0 && p < d1 {
				d := p - p%86400
				dayMax[d] = max(dayMax[d], rawMax[hostPeriod{h, p}])
			}
		}
		days := map[int64]bool{}
		for d, m := range dayMax {
			if b, ok := daily[hostPeriod{h, d}]; ok && b.raw == m {
				days[d] = true
				dayTuples = append(dayTuples, tuple(h, d, b.version))
			}
		}
		var raw []string
		lo, hi := int64(-1), int64(-1) // the raw interval being built
		flush := func() {
			if lo >= 0 {
				raw = append(raw, "("+between("window_start", lo, hi)+")")
			}
			lo = -1
		}
		for _, p := range ps {
			if days[p-p%86400] && p >= d0 && p < d1 {
				continue
			}
			if b, ok := hourly[hostPeriod{h, p}]; ok && b.raw == rawMax[hostPeriod{h, p}] {
				hourTuples = append(hourTuples, tuple(h, p, b.version))
				continue
			}
			if lo >= 0 && hi == p {
				hi = p + 3600
				continue
			}
			flush()
			lo, hi = p, p+3600
		}
		flush()
		if len(raw) > 0 {
			rawParts = append(rawParts, fmt.Sprintf("(host = %s AND (%s))", quote(h), strings.Join(raw, " OR ")))
		}
	}
	var pl plan
	if len(rawParts) > 0 {
		pl.raw = hc + " AND (" + strings.Join(rawParts, " OR ") + ")"
	}
	if len(hourTuples) > 0 {
		slices.Sort(hourTuples)
		pl.hour = fmt.Sprintf("%s AND %s AND (host, toUInt32(period_start), version) IN (%s)", hc, between("period_start", h0, h1), strings.Join(hourTuples, ", "))
	}
	if len(dayTuples) > 0 {
		slices.Sort(dayTuples)
		pl.day = fmt.Sprintf("%s AND %s AND (host, toUInt32(period_start), version) IN (%s)", hc, between("period_start", d0, d1), strings.Join(dayTuples, ", "))
	}
	return r.clean(ctx, pl)
}

// clean splits p's raw remote rows into those that need no FINAL and
// those that do. FINAL merges every part on read, in one thread in 18.16,
// and costs 4 to 8 times a plain read here. A window's rows need no FINAL
// when the rows of its newest copy (the version of its newest windows
// row) are exactly as many as that row's remotes: then they are one
// whole copy, and older copies are left out by their version. A window
// sent twice with the same version (a crash after the insert, before the
// outbox update) has twice as many, and is read with FINAL. Rows of a
// copy whose windows row never arrived (a crash between the two inserts)
// are not read either way until it does, as its windows row is not.
func (r *Reader) clean(ctx context.Context, p plan) (plan, error) {
	if p.raw == "" {
		return p, nil
	}
	type win struct {
		host string
		s    uint32
	}
	type copyOf struct {
		version uint64
		remotes uint64
	}
	newest := map[win]copyOf{}
	rows, err := r.conn.Query(ctx, fmt.Sprintf("SELECT host, toUInt32(window_start) AS s, max(version), toUInt64(argMax(remotes, version)) FROM %s.%s%s WHERE %s GROUP BY host, s",
		r.db, tableWindows, r.suffix, p.raw))
	if err != nil {
		return p, fmt.Errorf("clickhouse: %w", err)
	}
	for rows.Next() {
		var w win
		var c copyOf
		if err := rows.Scan(&w.host, &w.s, &c.version, &c.remotes); err != nil {
			rows.Close()
			return p, fmt.Errorf("clickhouse: %w", err)
		}
		newest[w] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("clickhouse: %w", err)
	}
	rows, err = r.conn.Query(ctx, fmt.Sprintf("SELECT host, toUInt32(window_start) AS s, version, count() FROM %s.%s%s WHERE %s GROUP BY host, s, version",
		r.db, tableRemotes, r.suffix, p.raw))
	if err != nil {
		return p, fmt.Errorf("clickhouse: %w", err)
	}
	var unclean []string
	for rows.Next() {
		var w win
		var v, n uint64
		if err := rows.Scan(&w.host, &w.s, &v, &n); err != nil {
			rows.Close()
			return p, fmt.Errorf("clickhouse: %w", err)
		}
		if c, ok := newest[w]; ok && c.version == v && c.remotes != n {
			unclean = append(unclean, fmt.Sprintf("(%s, %d)", quote(w.host), w.s))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("clickhouse: %w", err)
	}
	p.rawClean = fmt.Sprintf("%[1]s AND (host, window_start, version) GLOBAL IN (SELECT host, window_start, max(version) FROM %[2]s.%[3]s%[4]s WHERE %[1]s GROUP BY host, window_start)",
		p.raw, r.db, tableWindows, r.suffix)
	if len(unclean) > 0 {
		slices.Sort(unclean)
		set := strings.Join(unclean, ", ")
		p.rawClean += " AND (host, toUInt32(window_start)) NOT IN (" + set + ")"
		p.rawFinal = p.raw + " AND (host, toUInt32(window_start)) IN (" + set + ")"
	}
	return p, nil
}

func ceilTo(u, secs int64) int64 {
	if m := u % secs; m != 0 {
		return u - m + secs
	}
	return u
}

// remoteRows is the plan's remote rows as one table: host, addr, country,
// asn, as_org, the four counts, and t, the start of the unit a row is of
// (for a remote's newest country and AS). f is a filter on the rows.
func (r *Reader) remoteRows(p plan, f string) string {
	const cols = "host, addr, country, asn, as_org, tx_packets, tx_bytes, rx_packets, rx_bytes"
	var parts []string
	if p.rawClean != "" {
		parts = append(parts, fmt.Sprintf("SELECT %s, window_start AS t FROM %s.%s%s WHERE %s AND %s", cols, r.db, tableRemotes, r.suffix, p.rawClean, f))
	}
	if p.rawFinal != "" {
		parts = append(parts, fmt.Sprintf("SELECT %s, window_start AS t FROM %s WHERE %s AND %s", cols, r.table(tableRemotes), p.rawFinal, f))
	}
	for _, x := range []struct{ cond, table string }{{p.hour, tableRemotesHourly}, {p.day, tableRemotesDaily}} {
		if x.cond != "" {
			parts = append(parts, fmt.Sprintf("SELECT %s, period_start AS t FROM %s.%s%s WHERE %s AND %s", cols, r.db, x.table, r.suffix, x.cond, f))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("(SELECT %s, window_start AS t FROM %s WHERE 0)", cols, r.table(tableRemotes))
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ")"
}

// unitRows is the plan's units (raw windows and rollups) as one table: tier
// (0 raw, 1 hour, 2 day), host, t, secs, the statistics and other counts.
func (r *Reader) unitRows(p plan) string {
	const cols = "host, frames, tallied, non_ip, transit, malformed, excluded, local, drops, late, folded, oversize, spoofed, overflow, partial, other_tx_packets, other_tx_bytes, other_rx_packets, other_rx_bytes"
	var parts []string
	if p.raw != "" {
		parts = append(parts, fmt.Sprintf("SELECT toUInt8(0) AS tier, window_start AS t, window_seconds AS secs, %s FROM %s WHERE %s", cols, r.table(tableWindows), p.raw))
	}
	for i, x := range []struct {
		cond, table string
		secs        int
	}{{p.hour, tableWindowsHourly, 3600}, {p.day, tableWindowsDaily, 86400}} {
		if x.cond != "" {
			parts = append(parts, fmt.Sprintf("SELECT toUInt8(%d) AS tier, period_start AS t, toUInt32(%d) AS secs, %s FROM %s.%s%s WHERE %s", i+1, x.secs, cols, r.db, x.table, r.suffix, x.cond))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("(SELECT toUInt8(0) AS tier, window_start AS t, window_seconds AS secs, %s FROM %s WHERE 0)", cols, r.table(tableWindows))
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ")"
}
