package fleet

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/dstwatch/dstwatch/storage"
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
func (s *Sender) Send(ctx context.Context, host string, ws []*storage.Window, version uint64) error {
	vs := make([]versioned, len(ws))
	for i, w := range ws {
		vs[i] = versioned{w, version}
	}
	return insert(ctx, s.conn, s.db, host, vs)
}

// Close closes the connection.
func (s *Sender) Close() error { return s.conn.Close() }
