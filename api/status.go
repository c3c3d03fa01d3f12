package api

import "github.com/dstwatch/dstwatch/alert"

// Status is the daemon's state as GET /v1/status reports it. Times are UTC
// RFC 3339; sizes and counts exact integers.
type Status struct {
	Version       string       `json:"version"`
	Started       string       `json:"started"`
	UptimeSeconds int64        `json:"uptime_seconds"`
	Interfaces    []string     `json:"interfaces"`     // live capture interfaces
	Read          string       `json:"read,omitempty"` // the capture file being replayed
	Local         []string     `json:"local_addresses"`
	WindowSeconds int64        `json:"window_seconds"`
	Kernel        KernelStats  `json:"kernel"`
	Writer        WriterStats  `json:"writer"`
	Capture       CaptureStats `json:"capture"`
	GeoIP         []GeoFile    `json:"geoip"`
	DB            DBStats      `json:"db"`
	Alerts        *alert.Stats `json:"alerts,omitempty"` // limits and suppressed incidents; nil while alerts are off
	Export        *ExportStats `json:"export,omitempty"` // run --clickhouse only
}

// ExportStats describe the export to ClickHouse (package fleet).
type ExportStats struct {
	Target     string `json:"target"` // host:port/database
	Host       string `json:"host"`   // the host name its rows carry
	LagWindows int64  `json:"lag_windows"`
	LagSeconds int64  `json:"lag_seconds"`
	Exported   uint64 `json:"windows_exported"`
	Errors     uint64 `json:"errors"`
	Unexported uint64 `json:"pruned_unexported"` // windows retention deleted before their export
	Failing    string `json:"failing,omitempty"`
}

// KernelStats are summed over the live interfaces since the daemon started.
type KernelStats struct {
	Received uint64 `json:"received"`
	Drops    uint64 `json:"drops"`
}

// WriterStats describe the stage that stores windows.
type WriterStats struct {
	Backlog       int    `json:"backlog"` // closed windows waiting to be stored
	WindowsStored uint64 `json:"windows_stored"`
	LastStored    string `json:"last_stored,omitempty"` // start of the newest window stored
	Errors        uint64 `json:"errors"`                // failed store transactions
	Dropped       uint64 `json:"dropped"`               // windows given up after the queue bound
	Failing       string `json:"failing,omitempty"`     // the last store error, while stores fail
}

// CaptureStats tell about outages of live capture.
type CaptureStats struct {
	Gaps uint64   `json:"gaps"`                      // outages since start (interface down or gone)
	Down []string `json:"interfaces_down,omitempty"` // interfaces not capturing now
}

// GeoFile is one opened .mmdb file.
type GeoFile struct {
	Path  string `json:"path"`
	Type  string `json:"type"`
	Build string `json:"build"`
}

// DBStats describe the database file.
type DBStats struct {
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
	Windows   int    `json:"windows"`
	First     string `json:"first,omitempty"` // oldest window start
	Last      string `json:"last,omitempty"`  // newest window start
	Tiers     *Tiers `json:"tiers,omitempty"` // what each tier of history holds
	// Damaged names the stored windows and rollups met since start whose
	// values do not decode ("window 2026-...Z"); they are skipped.
	Damaged []string `json:"damaged,omitempty"`
}

// Tiers are the database's tiers of history: raw windows, hourly and daily
// rollups.
type Tiers struct {
	Windows TierStats `json:"windows"`
	Hours   TierStats `json:"hours"`
	Days    TierStats `json:"days"`
	Sealed  string    `json:"sealed,omitempty"` // hours before it are rolled up; later windows are raw only
}

// TierStats is what one tier holds: units (windows or rollups), the first
// and last start, and the bytes of their keys and values (the file adds
// bbolt's pages and free space).
type TierStats struct {
	Units int    `json:"units"`
	First string `json:"first,omitempty"`
	Last  string `json:"last,omitempty"`
	Bytes int64  `json:"bytes"`
}
