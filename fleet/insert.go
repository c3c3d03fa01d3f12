package fleet

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/dstwatch/dstwatch/window"
)

// The column lists are explicit: 18.16 sends no columns for a batch
// without one.
const (
	colsRemotes = "host, window_start, window_seconds, addr, country, asn, as_org, tx_packets, tx_bytes, rx_packets, rx_bytes, version"
	colsWindows = "host, window_start, window_seconds, geo_build, remotes, frames, tallied, non_ip, transit, malformed, excluded, local, drops, late, folded, oversize, spoofed, overflow, partial, " +
		"other_tx_packets, other_tx_bytes, other_rx_packets, other_rx_bytes, version"
	colsServices = "host, window_start, window_seconds, proto, side, port, remotes, tx_packets, tx_bytes, rx_packets, rx_bytes, version"
	colsSvcTop   = "host, window_start, window_seconds, proto, side, port, addr, country, asn, as_org, tx_packets, tx_bytes, rx_packets, rx_bytes, version"
)

// addr16 is an address as ClickHouse's IPv6StringToNum makes it: 16 bytes,
// IPv4 mapped.
func addr16(a netip.Addr) string {
	b := a.As16()
	return string(b[:])
}

// insert writes ws in one batch per table. The windows table goes last:
// a window row means its remotes and services were sent.
func insert(ctx context.Context, c clickhouse.Conn, db, host string, ws []versioned) error {
	if len(ws) == 0 {
		return nil
	}
	// First the hours' new versions: a reader that sees one before the
	// windows arrive reads that hour raw, never a rollup that lacks them.
	hours := map[int64]uint64{}
	var order []int64
	for _, v := range ws {
		h := v.w.Start.Unix() - v.w.Start.Unix()%3600
		if _, ok := hours[h]; !ok {
			order = append(order, h)
		}
		hours[h] = max(hours[h], v.version)
	}
	hb, err := c.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (host, hour, version)", db, tableRawHours))
	if err != nil {
		return fmt.Errorf("insert raw hours: %w", err)
	}
	for _, h := range order {
		if err := hb.Append(host, time.Unix(h, 0).UTC(), hours[h]); err != nil {
			return fmt.Errorf("insert raw hours: %w", err)
		}
	}
	if err := hb.Send(); err != nil {
		return fmt.Errorf("insert raw hours: %w", err)
	}
	rb, err := c.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s)", db, tableRemotes, colsRemotes))
	if err != nil {
		return fmt.Errorf("insert remotes: %w", err)
	}
	sb, err := c.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s)", db, tableServices, colsServices))
	if err != nil {
		rb.Abort()
		return fmt.Errorf("insert services: %w", err)
	}
	tb, err := c.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s)", db, tableSvcTop, colsSvcTop))
	if err != nil {
		rb.Abort()
		sb.Abort()
		return fmt.Errorf("insert service remotes: %w", err)
	}
	nsvc, ntop := 0, 0
	for _, v := range ws {
		w, start, secs := v.w, v.w.Start.UTC(), uint32(v.w.Length/time.Second)
		for _, r := range w.Remotes {
			if err := rb.Append(host, start, secs, addr16(r.Addr), r.Country, r.ASN, r.ASOrg,
				r.TxPackets, r.TxBytes, r.RxPackets, r.RxBytes, v.version); err != nil {
				return fmt.Errorf("insert remotes: %w", err)
			}
		}
		for _, s := range w.Services {
			nsvc++
			if err := sb.Append(host, start, secs, s.Key.Proto().String(), s.Key.Side().String(), s.Key.Port(), uint32(s.Remotes),
				s.TxPackets, s.TxBytes, s.RxPackets, s.RxBytes, v.version); err != nil {
				return fmt.Errorf("insert services: %w", err)
			}
			for _, r := range s.Top {
				ntop++
				if err := tb.Append(host, start, secs, s.Key.Proto().String(), s.Key.Side().String(), s.Key.Port(),
					addr16(r.Addr), r.Country, r.ASN, r.ASOrg, r.TxPackets, r.TxBytes, r.RxPackets, r.RxBytes, v.version); err != nil {
					return fmt.Errorf("insert service remotes: %w", err)
				}
			}
		}
	}
	if err := rb.Send(); err != nil {
		return fmt.Errorf("insert remotes: %w", err)
	}
	if nsvc > 0 {
		if err := sb.Send(); err != nil {
			return fmt.Errorf("insert services: %w", err)
		}
	} else {
		sb.Abort()
	}
	if ntop > 0 {
		if err := tb.Send(); err != nil {
			return fmt.Errorf("insert service remotes: %w", err)
		}
	} else {
		tb.Abort()
	}
	wb, err := c.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s)", db, tableWindows, colsWindows))
	if err != nil {
		return fmt.Errorf("insert windows: %w", err)
	}
	for _, v := range ws {
		w, st := v.w, v.w.Stats
		geo := time.Unix(0, 0).UTC()
		if !w.GeoBuild.IsZero() {
			geo = w.GeoBuild.UTC()
		}
		if err := wb.Append(host, w.Start.UTC(), uint32(w.Length/time.Second), geo, uint32(len(w.Remotes)),
			st.Frames, st.Tallied, st.NonIP, st.Transit, st.Malformed, st.Excluded, st.Local, st.Drops, st.Late, st.Folded,
			st.Oversize, st.Spoofed, st.Overflow, uint8(st.Partial),
			w.Other.TxPackets, w.Other.TxBytes, w.Other.RxPackets, w.Other.RxBytes, v.version); err != nil {
			return fmt.Errorf("insert windows: %w", err)
		}
	}
	if err := wb.Send(); err != nil {
		return fmt.Errorf("insert windows: %w", err)
	}
	return nil
}

// Sender inserts windows as the exporter does, without an outbox: for
// load tools that play many hosts.
type Sender struct {
	conn clickhouse.Conn
	db   string
}

// NewSender connects and creates the tables when missing.
func NewSender(ctx context.Context, t Target, cluster string) (*Sender, error) {
	c, err := t.open("default")
	if err != nil {
		return nil, err
	}
	if err := ensureSchema(ctx, c, t.Database, cluster); err != nil {
		c.Close()
		return nil, err
	}
	return &Sender{conn: c, db: t.Database}, nil
}

// Send inserts ws as host's, all with the one version.
func (s *Sender) Send(ctx context.Context, host string, ws []*window.Window, version uint64) error {
	vs := make([]versioned, len(ws))
	for i, w := range ws {
		vs[i] = versioned{w, version}
	}
	return insert(ctx, s.conn, s.db, host, vs)
}

// Close closes the connection.
func (s *Sender) Close() error { return s.conn.Close() }

// SendRollup inserts w as host's rollup of its hour (Length 1h) or UTC day
// (24h), built from windows raw windows of raw version rawVersion, as the
// exporter's own build would leave it: for load tools that make a month of
// rollups without its billions of raw rows.
func (s *Sender) SendRollup(ctx context.Context, host string, w *window.Window, windows uint32, rawVersion uint64) error {
	t := hourTier
	switch w.Length {
	case time.Hour:
	case 24 * time.Hour:
		t = dayTier
	default:
		return fmt.Errorf("rollup of length %v: want 1h or 24h", w.Length)
	}
	const version = 1
	start := w.Start.UTC()
	rb, err := s.conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (host, period_start, addr, country, asn, as_org, tx_packets, tx_bytes, rx_packets, rx_bytes, country_seq, asn_seq, version)", s.db, t.remotes))
	if err != nil {
		return fmt.Errorf("insert %s: %w", t.remotes, err)
	}
	for _, r := range w.Remotes {
		if err := rb.Append(host, start, addr16(r.Addr), r.Country, r.ASN, r.ASOrg, r.TxPackets, r.TxBytes, r.RxPackets, r.RxBytes,
			rawVersion, rawVersion, uint64(version)); err != nil {
			return fmt.Errorf("insert %s: %w", t.remotes, err)
		}
	}
	if err := rb.Send(); err != nil {
		return fmt.Errorf("insert %s: %w", t.remotes, err)
	}
	wb, err := s.conn.PrepareBatch(ctx, fmt.Sprintf(`INSERT INTO %s.%s (host, period_start, windows, frames, tallied, non_ip, transit, malformed, excluded, local, drops, late, folded,
	oversize, spoofed, overflow, partial, other_tx_packets, other_tx_bytes, other_rx_packets, other_rx_bytes, raw_version, version)`, s.db, t.windows))
	if err != nil {
		return fmt.Errorf("insert %s: %w", t.windows, err)
	}
	st := w.Stats
	if err := wb.Append(host, start, windows, st.Frames, st.Tallied, st.NonIP, st.Transit, st.Malformed, st.Excluded, st.Local, st.Drops, st.Late, st.Folded,
		st.Oversize, st.Spoofed, st.Overflow, uint8(st.Partial), w.Other.TxPackets, w.Other.TxBytes, w.Other.RxPackets, w.Other.RxBytes, rawVersion, uint64(version)); err != nil {
		return fmt.Errorf("insert %s: %w", t.windows, err)
	}
	if err := wb.Send(); err != nil {
		return fmt.Errorf("insert %s: %w", t.windows, err)
	}
	return nil
}
