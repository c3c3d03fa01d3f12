package fleet

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/window"
)

// ByHost groups a fleet answer by the host that wrote the rows.
const ByHost query.By = "host"

// Reader answers query's questions from the fleet's tables.
type Reader struct {
	conn   clickhouse.Conn
	db     string
	suffix string // "_all" to read the Distributed tables
	// rollups: the database has the rollup tables (schema 2); rawOnly
	// reads raw windows even so (tests compare the two).
	rollups, rawOnly bool
}

// Open connects a reader; distributed reads the <table>_all Distributed
// tables instead of the tables of the server connected to.
func Open(ctx context.Context, t Target, distributed bool) (*Reader, error) {
	c, err := t.open(t.Database)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	if err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("clickhouse %s: %w", strings.Join(t.Addrs, ","), err)
	}
	r := &Reader{conn: c, db: t.Database}
	if distributed {
		r.suffix = "_all"
	}
	// A database no schema-2 exporter has written yet has no rollups.
	var n uint64
	if err := c.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM system.tables WHERE database = %s AND name = %s",
		quote(t.Database), quote(tableWindowsDaily+r.suffix))).Scan(&n); err != nil {
		c.Close()
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	r.rollups = n > 0
	return r, nil
}

// Close closes the connection.
func (r *Reader) Close() error { return r.conn.Close() }

// Question is a fleet question: query's question plus the hosts (none:
// all) and the range [From, To), or the Last N window starts.
type Question struct {
	query.Question
	Hosts    []string
	From, To time.Time
	Last     int
}

func (r *Reader) table(name string) string { return r.db + "." + name + r.suffix + " FINAL" }

// where is the condition on host and range shared by every table.
func (r *Reader) where(ctx context.Context, q Question) (string, error) {
	var cond []string
	if len(q.Hosts) > 0 {
		hs := make([]string, len(q.Hosts))
		for i, h := range q.Hosts {
			hs[i] = quote(h)
		}
		cond = append(cond, "host IN ("+strings.Join(hs, ", ")+")")
	}
	if q.Last > 0 {
		sql := fmt.Sprintf("SELECT toUInt32(window_start) AS s FROM %s.%s%s WHERE %s GROUP BY s ORDER BY s DESC LIMIT %d",
			r.db, tableWindows, r.suffix, orTrue(cond), q.Last)
		rows, err := r.conn.Query(ctx, sql)
		if err != nil {
			return "", fmt.Errorf("clickhouse: %w", err)
		}
		var first uint32
		for rows.Next() {
			if err := rows.Scan(&first); err != nil {
				rows.Close()
				return "", fmt.Errorf("clickhouse: %w", err)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return "", fmt.Errorf("clickhouse: %w", err)
		}
		cond = append(cond, fmt.Sprintf("window_start >= toDateTime(%d)", first))
	} else {
		cond = append(cond, fmt.Sprintf("window_start >= toDateTime(%d) AND window_start < toDateTime(%d)",
			ceilUnix(q.From), ceilUnix(q.To)))
	}
	return orTrue(cond), nil
}

func orTrue(cond []string) string {
	if len(cond) == 0 {
		return "1"
	}
	return strings.Join(cond, " AND ")
}

// ceilUnix is the first whole second at or after t (a window belongs to a
// range when its start does), never before 1970.
func ceilUnix(t time.Time) int64 {
	u := t.Unix()
	if t.Nanosecond() > 0 {
		u++
	}
	return max(u, 0)
}

// remoteWhere is the filter on remote rows, as query.Filter.Apply keeps
// them: address prefixes, countries, AS numbers, and no row left without
// counts in the direction asked.
func remoteWhere(f query.Filter) string {
	var cond []string
	if len(f.Remotes) > 0 {
		var or []string
		for _, p := range f.Remotes {
			lo, hi := prefixRange(p)
			or = append(or, fmt.Sprintf("(addr >= unhex('%s') AND addr <= unhex('%s'))", lo, hi))
		}
		cond = append(cond, "("+strings.Join(or, " OR ")+")")
	}
	if len(f.Countries) > 0 {
		var cs []string
		for _, c := range f.Countries {
			if c == "--" {
				c = ""
			}
			cs = append(cs, quote(strings.ToUpper(c)))
		}
		cond = append(cond, "country IN ("+strings.Join(cs, ", ")+")")
	}
	if len(f.ASNs) > 0 {
		var as []string
		for _, a := range f.ASNs {
			as = append(as, strconv.FormatUint(uint64(a), 10))
		}
		cond = append(cond, "asn IN ("+strings.Join(as, ", ")+")")
	}
	switch f.Direction {
	case query.Tx:
		cond = append(cond, "(tx_packets > 0 OR tx_bytes > 0)")
	case query.Rx:
		cond = append(cond, "(rx_packets > 0 OR rx_bytes > 0)")
	}
	return orTrue(cond)
}

// prefixRange is the first and last address of p as 16-byte hex.
func prefixRange(p netip.Prefix) (lo, hi string) {
	p = p.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	b := p.Addr().As16()
	h := b
	for i := bits; i < 128; i++ {
		h[i/8] |= 1 << (7 - i%8)
	}
	return hex.EncodeToString(b[:]), hex.EncodeToString(h[:])
}

// counts selects the four sums in the direction asked.
func counts(d query.Direction, prefix string) string {
	c := func(way, what string) string {
		if (way == "rx" && d == query.Tx) || (way == "tx" && d == query.Rx) {
			return "toUInt64(0)"
		}
		return fmt.Sprintf("toUInt64(sum(%s%s_%s))", prefix, way, what)
	}
	return strings.Join([]string{c("tx", "packets"), c("tx", "bytes"), c("rx", "packets"), c("rx", "bytes")}, ", ")
}

// Aggregate adds the range up as q asks (remote, country, asn or host),
// heaviest first and cut to q.Top as query.Answer does, with a summary of
// the windows read. The rows of one host equal that host's own query over
// raw windows.
func (r *Reader) Aggregate(ctx context.Context, q Question) ([]query.Row, query.Summary, error) {
	p, err := r.plan(ctx, q)
	if err != nil {
		return nil, query.Summary{}, err
	}
	// One read of the units gives the summary and the other rows.
	sum, others, err := r.units(ctx, p, q.Filter.Direction)
	if err != nil {
		return nil, sum, err
	}
	src := r.remoteRows(p, remoteWhere(q.Filter))
	var sql string
	switch q.By {
	case query.ByRemote:
		sql = fmt.Sprintf("SELECT addr, argMax(country, t), argMax(asn, t), argMax(as_org, t), toUInt64(0), %s FROM %s GROUP BY addr",
			counts(q.Filter.Direction, ""), src)
	case query.ByCountry:
		sql = fmt.Sprintf("SELECT country, toUInt64(uniqExact(addr)), %s FROM %s GROUP BY country",
			counts(q.Filter.Direction, ""), src)
	case query.ByASN:
		sql = fmt.Sprintf("SELECT asn, argMaxIf(as_org, t, as_org != ''), toUInt64(uniqExact(addr)), %s FROM %s GROUP BY asn",
			counts(q.Filter.Direction, ""), src)
	case ByHost:
		sql = fmt.Sprintf("SELECT host, toUInt64(uniqExact(addr)), %s FROM %s GROUP BY host",
			counts(q.Filter.Direction, ""), src)
	default:
		return nil, sum, fmt.Errorf("cannot aggregate by %q: want remote, country, asn or host", q.By)
	}
	rows, err := r.conn.Query(ctx, sql)
	if err != nil {
		return nil, sum, fmt.Errorf("clickhouse: %w", err)
	}
	defer rows.Close()
	var out []query.Row
	byHost := map[string]int{}
	for rows.Next() {
		var row query.Row
		var n uint64
		c := &row.Counts
		switch q.By {
		case query.ByRemote:
			var a string
			err = rows.Scan(&a, &row.Country, &row.ASN, &row.ASOrg, &n, &c.TxPackets, &c.TxBytes, &c.RxPackets, &c.RxBytes)
			row.Addr = fromAddr16(a)
			row.Key = row.Addr.String()
		case query.ByCountry:
			err = rows.Scan(&row.Country, &n, &c.TxPackets, &c.TxBytes, &c.RxPackets, &c.RxBytes)
			row.Key = row.Country
		case query.ByASN:
			err = rows.Scan(&row.ASN, &row.ASOrg, &n, &c.TxPackets, &c.TxBytes, &c.RxPackets, &c.RxBytes)
			row.Key = strconv.FormatUint(uint64(row.ASN), 10)
		case ByHost:
			err = rows.Scan(&row.Key, &n, &c.TxPackets, &c.TxBytes, &c.RxPackets, &c.RxBytes)
			byHost[row.Key] = len(out)
		}
		if err != nil {
			return nil, sum, fmt.Errorf("clickhouse: %w", err)
		}
		row.Remotes = int(n)
		if c.IsZero() {
			continue
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, sum, fmt.Errorf("clickhouse: %w", err)
	}
	rows.Close()
	// The remotes a window folded into other (--max-remotes): one other
	// row, or each host's own for ByHost. A filter on remotes cannot see
	// them, as in query.Filter.Apply.
	if !q.Filter.SelectsRemotes() {
		var total window.Counts
		for _, o := range others {
			if q.By != ByHost {
				total.Add(o.Counts)
				continue
			}
			if i, ok := byHost[o.host]; ok {
				out[i].Counts.Add(o.Counts)
			} else if !o.Counts.IsZero() {
				out = append(out, query.Row{Key: o.host, Counts: o.Counts})
			}
		}
		if !total.IsZero() {
			out = append(out, query.Row{Key: query.OtherKey, Counts: total})
		}
	}
	query.SortRows(out, q.Sort)
	return query.Top(out, q.Top), sum, nil
}

type hostCounts struct {
	host string
	window.Counts
}

// summary describes the units of p (raw windows and rollups) as
// query.Summary does; a unit of each host counts once.
func (r *Reader) summary(ctx context.Context, p plan) (query.Summary, error) {
	s, _, err := r.units(ctx, p, query.Both)
	return s, err
}

// units reads p's units once, per host: their summary, and each host's
// counts folded into other in direction d, oldest host first.
func (r *Reader) units(ctx context.Context, p plan, d query.Direction) (query.Summary, []hostCounts, error) {
	var s query.Summary
	rows, err := r.conn.Query(ctx, fmt.Sprintf(`SELECT host, toUInt64(countIf(tier = 0)), toUInt64(countIf(tier = 1)), toUInt64(countIf(tier = 2)), toUInt32(min(t)), toUInt32(max(toUInt32(t) + secs)),
	toUInt64(sum(frames)), toUInt64(sum(tallied)), toUInt64(sum(non_ip)), toUInt64(sum(transit)), toUInt64(sum(malformed)),
	toUInt64(sum(excluded)), toUInt64(sum(local)), toUInt64(sum(drops)), toUInt64(sum(late)), toUInt64(sum(folded)),
	toUInt64(sum(oversize)), toUInt64(sum(spoofed)), toUInt64(sum(overflow)), toUInt64(countIf(partial > 0)),
	toUInt64(countIf(drops > 0)), toUInt64(countIf(folded > 0)), %s FROM %s GROUP BY host ORDER BY host`, counts(d, "other_"), r.unitRows(p)))
	if err != nil {
		return s, nil, fmt.Errorf("clickhouse: %w", err)
	}
	defer rows.Close()
	var others []hostCounts
	for rows.Next() {
		var n, hours, days, drops, folds, partials uint64
		var first, last uint32
		var st window.Stats
		var h hostCounts
		if err := rows.Scan(&h.host, &n, &hours, &days, &first, &last, &st.Frames, &st.Tallied, &st.NonIP, &st.Transit, &st.Malformed,
			&st.Excluded, &st.Local, &st.Drops, &st.Late, &st.Folded, &st.Oversize, &st.Spoofed, &st.Overflow, &partials, &drops, &folds,
			&h.TxPackets, &h.TxBytes, &h.RxPackets, &h.RxBytes); err != nil {
			return s, nil, fmt.Errorf("clickhouse: %w", err)
		}
		if n+hours+days == 0 {
			continue
		}
		s.Windows, s.Hours, s.Days = s.Windows+int(n), s.Hours+int(hours), s.Days+int(days)
		s.DropUnits, s.FoldUnits, s.PartialUnits = s.DropUnits+int(drops), s.FoldUnits+int(folds), s.PartialUnits+int(partials)
		s.Stats.Add(st)
		f, l := time.Unix(int64(first), 0).UTC(), time.Unix(int64(last), 0).UTC()
		if s.First.IsZero() || f.Before(s.First) {
			s.First = f
		}
		if l.After(s.Last) {
			s.Last = l
		}
		others = append(others, h)
	}
	if err := rows.Err(); err != nil {
		return s, nil, fmt.Errorf("clickhouse: %w", err)
	}
	return s, others, nil
}

func fromAddr16(s string) netip.Addr {
	var b [16]byte
	copy(b[:], s)
	return netip.AddrFrom16(b).Unmap()
}

// Windows returns the windows in range, the hosts' windows of one start
// summed into one, oldest first, each remote's counts summed over the
// hosts and its country and AS from the newest row. Filters are the
// caller's to apply (query.Filter.Apply), as for local windows.
func (r *Reader) Windows(ctx context.Context, q Question) ([]*window.Window, error) {
	where, err := r.where(ctx, q)
	if err != nil {
		return nil, err
	}
	rows, err := r.conn.Query(ctx, fmt.Sprintf(`SELECT toUInt32(window_start) AS s, toUInt32(max(window_seconds)), toUInt32(max(geo_build)),
	toUInt64(sum(frames)), toUInt64(sum(tallied)), toUInt64(sum(non_ip)), toUInt64(sum(transit)), toUInt64(sum(malformed)),
	toUInt64(sum(excluded)), toUInt64(sum(local)), toUInt64(sum(drops)), toUInt64(sum(late)), toUInt64(sum(folded)),
	toUInt64(sum(oversize)), toUInt64(sum(spoofed)), toUInt64(sum(overflow)), toUInt8(groupBitOr(partial)), %s
	FROM %s WHERE %s GROUP BY s ORDER BY s`, counts(query.Both, "other_"), r.table(tableWindows), where))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	var ws []*window.Window
	index := map[uint32]*window.Window{}
	for rows.Next() {
		var start, secs, geo uint32
		var partial uint8
		w := &window.Window{}
		st, o := &w.Stats, &w.Other
		if err := rows.Scan(&start, &secs, &geo, &st.Frames, &st.Tallied, &st.NonIP, &st.Transit, &st.Malformed,
			&st.Excluded, &st.Local, &st.Drops, &st.Late, &st.Folded, &st.Oversize, &st.Spoofed, &st.Overflow, &partial,
			&o.TxPackets, &o.TxBytes, &o.RxPackets, &o.RxBytes); err != nil {
			rows.Close()
			return nil, fmt.Errorf("clickhouse: %w", err)
		}
		st.Partial = window.Partial(partial)
		w.Start, w.Length = time.Unix(int64(start), 0).UTC(), time.Duration(secs)*time.Second
		if geo > 0 {
			w.GeoBuild = time.Unix(int64(geo), 0).UTC()
		}
		index[start] = w
		ws = append(ws, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	rows, err = r.conn.Query(ctx, fmt.Sprintf(`SELECT toUInt32(window_start) AS s, addr, argMax(country, host), argMax(asn, host), argMax(as_org, host), %s
	FROM %s WHERE %s GROUP BY s, addr`, counts(query.Both, ""), r.table(tableRemotes), where))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var start uint32
		var a string
		var rm window.Remote
		c := &rm.Counts
		if err := rows.Scan(&start, &a, &rm.Country, &rm.ASN, &rm.ASOrg, &c.TxPackets, &c.TxBytes, &c.RxPackets, &c.RxBytes); err != nil {
			return nil, fmt.Errorf("clickhouse: %w", err)
		}
		rm.Addr = fromAddr16(a)
		if w := index[start]; w != nil {
			w.Remotes = append(w.Remotes, rm)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	for _, w := range ws {
		slices.SortFunc(w.Remotes, heavierRemote)
	}
	rows.Close()
	if err := r.windowServices(ctx, where, index); err != nil {
		return nil, err
	}
	return ws, nil
}

// current keeps the service rows of each window's newest copy. A window
// merged after its export is sent again whole, but a merge can push a
// remote out of a service's rows, and FINAL cannot drop a row that the
// newer copy simply lacks; the windows table knows each copy's version.
func (r *Reader) current(where string) string {
	return fmt.Sprintf("(host, window_start, version) GLOBAL IN (SELECT host, window_start, version FROM %s WHERE %s)", r.table(tableWindows), where)
}

// serviceKey reads a service's columns back.
func serviceKey(proto, side string, port uint16) window.ServiceKey {
	p, err := window.ParseProto(proto)
	if err != nil {
		p = window.ProtoOther
	}
	s := window.SideNone
	for sd := range window.Side(window.NumSides) { // every side by its name, "scan" too
		if sd.String() == side {
			s = sd
		}
	}
	return window.MakeServiceKey(p, s, port)
}

// serviceWhere selects services by port, protocol and side.
func serviceWhere(f query.ServiceFilter) string {
	var cond []string
	if len(f.Ports) > 0 {
		var ps []string
		for _, p := range f.Ports {
			ps = append(ps, strconv.Itoa(int(p)))
		}
		cond = append(cond, "port IN ("+strings.Join(ps, ", ")+")")
	}
	if len(f.Protos) > 0 {
		var ps []string
		for _, p := range f.Protos {
			ps = append(ps, quote(p.String()))
		}
		cond = append(cond, "proto IN ("+strings.Join(ps, ", ")+")")
	}
	if len(f.Sides) > 0 {
		var ss []string
		for _, s := range f.Sides {
			ss = append(ss, quote(s.String()))
		}
		cond = append(cond, "side IN ("+strings.Join(ss, ", ")+")")
	}
	return orTrue(cond)
}

// Services answers query --by service as query.AnswerServices does: per
// service its traffic and distinct remotes (the larger of a window's count
// and the distinct addresses of its rows), or with a remote filter the
// rows that match.
func (r *Reader) Services(ctx context.Context, q Question, f query.ServiceFilter) ([]query.ServiceRow, query.Summary, error) {
	where, err := r.where(ctx, q)
	if err != nil {
		return nil, query.Summary{}, err
	}
	sum, err := r.summary(ctx, plan{raw: where})
	if err != nil {
		return nil, sum, err
	}
	sw := where + " AND " + serviceWhere(f)
	var sql string
	if f.SelectsRemotes() {
		sql = fmt.Sprintf("SELECT proto, side, port, toUInt64(uniqExact(addr)), %s FROM %s WHERE %s AND %s AND %s GROUP BY proto, side, port",
			counts(f.Direction, ""), r.table(tableSvcTop), sw, remoteWhere(f.Filter), r.current(where))
	} else {
		dir := remoteWhere(query.Filter{Direction: f.Direction}) // the same test on a service's counts
		// The services of windows where they count in the direction
		// asked, and the distinct addresses of those windows' rows.
		// GLOBAL: over Distributed tables the subqueries run once, on
		// the server asked, not once per shard.
		sql = fmt.Sprintf(`SELECT proto, side, port, toUInt64(greatest(max(remotes), any(n))), %[1]s FROM %[2]s
	GLOBAL ANY LEFT JOIN (SELECT proto, side, port, toUInt64(uniqExact(addr)) AS n FROM %[3]s
		WHERE %[4]s AND %[6]s AND (host, window_start, proto, side, port) GLOBAL IN (SELECT host, window_start, proto, side, port FROM %[2]s WHERE %[4]s AND %[5]s)
		GROUP BY proto, side, port) USING (proto, side, port)
	WHERE %[4]s AND %[5]s GROUP BY proto, side, port`,
			counts(f.Direction, ""), r.table(tableServices), r.table(tableSvcTop), sw, dir, r.current(where))
	}
	rows, err := r.conn.Query(ctx, sql)
	if err != nil {
		return nil, sum, fmt.Errorf("clickhouse: %w", err)
	}
	defer rows.Close()
	var out []query.ServiceRow
	for rows.Next() {
		var proto, side string
		var port uint16
		var n uint64
		var row query.ServiceRow
		c := &row.Counts
		if err := rows.Scan(&proto, &side, &port, &n, &c.TxPackets, &c.TxBytes, &c.RxPackets, &c.RxBytes); err != nil {
			return nil, sum, fmt.Errorf("clickhouse: %w", err)
		}
		if c.IsZero() {
			continue
		}
		row.Key, row.Remotes = serviceKey(proto, side, port), int(n)
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, sum, fmt.Errorf("clickhouse: %w", err)
	}
	weight := func(c window.Counts) uint64 {
		if q.Sort == query.SortPackets {
			return c.Packets()
		}
		return c.Bytes()
	}
	slices.SortFunc(out, func(x, y query.ServiceRow) int {
		return cmp.Or(cmp.Compare(weight(y.Counts), weight(x.Counts)), cmp.Compare(x.Key, y.Key))
	})
	return query.TopServices(out, q.Top), sum, nil
}

// windowServices adds each window's services, summed over the hosts, with
// their remote rows, in the order a stored window has them.
func (r *Reader) windowServices(ctx context.Context, where string, index map[uint32]*window.Window) error {
	type skey struct {
		start uint32
		svc   window.ServiceKey
	}
	at := map[skey]*window.Service{}
	rows, err := r.conn.Query(ctx, fmt.Sprintf(`SELECT toUInt32(window_start) AS s, proto, side, port, toUInt64(sum(remotes)), %s
	FROM %s WHERE %s GROUP BY s, proto, side, port`, counts(query.Both, ""), r.table(tableServices), where))
	if err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	var svcs []skey
	var all []window.Service
	for rows.Next() {
		var start uint32
		var proto, side string
		var port uint16
		var n uint64
		var s window.Service
		c := &s.Counts
		if err := rows.Scan(&start, &proto, &side, &port, &n, &c.TxPackets, &c.TxBytes, &c.RxPackets, &c.RxBytes); err != nil {
			rows.Close()
			return fmt.Errorf("clickhouse: %w", err)
		}
		s.Key, s.Remotes = serviceKey(proto, side, port), int(n)
		svcs = append(svcs, skey{start, s.Key})
		all = append(all, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	for i := range all {
		at[svcs[i]] = &all[i]
	}
	rows, err = r.conn.Query(ctx, fmt.Sprintf(`SELECT toUInt32(window_start) AS s, proto, side, port, addr, argMax(country, host), argMax(asn, host), argMax(as_org, host), %s
	FROM %s WHERE %s AND %s GROUP BY s, proto, side, port, addr`, counts(query.Both, ""), r.table(tableSvcTop), where, r.current(where)))
	if err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var start uint32
		var proto, side, a string
		var port uint16
		var rm window.Remote
		c := &rm.Counts
		if err := rows.Scan(&start, &proto, &side, &port, &a, &rm.Country, &rm.ASN, &rm.ASOrg, &c.TxPackets, &c.TxBytes, &c.RxPackets, &c.RxBytes); err != nil {
			return fmt.Errorf("clickhouse: %w", err)
		}
		rm.Addr = fromAddr16(a)
		if s := at[skey{start, serviceKey(proto, side, port)}]; s != nil {
			s.Top = append(s.Top, rm)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	for i, k := range svcs {
		s := &all[i]
		slices.SortFunc(s.Top, heavierRemote)
		s.Other = s.Counts
		for _, t := range s.Top {
			s.Other.TxPackets -= t.TxPackets
			s.Other.TxBytes -= t.TxBytes
			s.Other.RxPackets -= t.RxPackets
			s.Other.RxBytes -= t.RxBytes
		}
		if w := index[k.start]; w != nil {
			w.Services = append(w.Services, *s)
		}
	}
	for _, w := range index {
		slices.SortFunc(w.Services, func(x, y window.Service) int {
			return cmp.Or(cmp.Compare(y.Bytes(), x.Bytes()), cmp.Compare(x.Key, y.Key))
		})
	}
	return nil
}

// heavierRemote orders remotes as a stored window does: bytes both ways
// descending, then address.
func heavierRemote(a, b window.Remote) int {
	return cmp.Or(cmp.Compare(b.Bytes(), a.Bytes()), a.Addr.Compare(b.Addr))
}
