// Package window owns the model of a window and its counts, shared by
// capture, rotate, storage and every reader: the per-remote and per-service
// tallies (Counts), how a window's numbers came about (Stats, Partial), the
// service key a packet is counted under (Proto, Side, ServiceKey), and a
// closed window as stored and answered (Window, Remote, Group, Service) at
// one of the stored resolutions (Resolution).
//
// It holds types and their arithmetic only, and imports only the standard
// library, so that a package which reads windows (a query, a report, the
// record log, metrics) need not import the database, and the database need
// not import the packet decoder. rotate's Finish makes a Window with the
// geo fields empty, which the daemon's writer fills in; the open window
// belongs to rotate, how a window is encoded on disk to storage.
package window
