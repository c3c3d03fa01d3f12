// Package daemon is dstwatch's running daemon: it wires the pipeline
// stages (capture, rotate, the sink that resolves, stores and fans out
// closed windows) with the API, metrics, dashboard and alerts, owns every
// goroutine they run, and supervises the capture interfaces. New opens
// everything from a Config, Run captures until its context ends and shuts
// down in pipeline order. Flags, output and subcommands are the CLI's
// (cmd/dstwatch).
package daemon

// Version is the version status and metrics report. The CLI sets it: the
// -ldflags -X and build-info rules are the command's.
var Version = "devel"

func buildVersion() string { return Version }
