package storage

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// These mirror go.etcd.io/bbolt/internal/common (page.go, meta.go,
// types.go), which cannot be imported. bbolt writes them in native byte
// order; dstwatch only runs on little-endian Linux hosts, but NativeEndian
// keeps the check right on any host bbolt itself supports.
const (
	boltMagic          = 0xED0CDAED
	boltVersion        = 2
	boltPageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	boltMetaSize       = 64 // magic, version, pageSize, flags u32; root {pgid, seq u64}; freelist, pgid, txid, checksum u64
	boltMetaSumLen     = 56 // the checksum covers the meta up to the checksum field
	boltNoFreelist     = ^uint64(0)
)

type boltMeta struct {
	magic, version, pageSize uint32
	root, freelist, pgid     uint64
	txid, checksum, sum      uint64
}

func parseBoltMeta(page []byte) boltMeta {
	m := page[boltPageHeaderSize : boltPageHeaderSize+boltMetaSize]
	e := binary.NativeEndian
	h := fnv.New64a()
	h.Write(m[:boltMetaSumLen])
	return boltMeta{
		magic:    e.Uint32(m[0:]),
		version:  e.Uint32(m[4:]),
		pageSize: e.Uint32(m[8:]),
		root:     e.Uint64(m[16:]),
		freelist: e.Uint64(m[32:]),
		pgid:     e.Uint64(m[40:]),
		txid:     e.Uint64(m[48:]),
		checksum: e.Uint64(m[56:]),
		sum:      h.Sum64(),
	}
}

func (m boltMeta) valid() bool {
	return m.magic == boltMagic && m.version == boltVersion && m.checksum == m.sum &&
		m.pageSize >= 1024 && m.pageSize <= 1<<24 && m.pageSize&(m.pageSize-1) == 0
}

// sniffResult says what the first bytes of a file showed.
type sniffResult int

const (
	sniffBolt    sniffResult = iota // a bbolt file whose pages all lie inside the file
	sniffForeign                    // not a bbolt file at all
	sniffDamaged                    // a bbolt file that bbolt must not open
)

// sniff reads a file's bbolt meta pages without bbolt. It exists because
// bbolt trusts what it finds: it maps pages past the end of a truncated
// file (a read there is SIGBUS, which kills the process, not an error) and
// on a read-write open may write a freelist into a file that is not ours.
// The reason string goes into the user's error message.
func sniff(f *os.File, size int64) (sniffResult, string, error) {
	var page [boltPageHeaderSize + boltMetaSize]byte
	if size < int64(len(page)) {
		return sniffForeign, fmt.Sprintf("only %d bytes, too short for a bbolt file", size), nil
	}
	if _, err := f.ReadAt(page[:], 0); err != nil {
		return 0, "", err
	}
	m0 := parseBoltMeta(page[:])
	if m0.magic != boltMagic {
		return sniffForeign, "no bbolt magic in the first page", nil
	}
	if m0.version != boltVersion {
		return sniffForeign, fmt.Sprintf("bbolt file format %d, want %d", m0.version, boltVersion), nil
	}

	// bbolt uses the valid meta page with the higher transaction id; so do
	// we, to judge the same state bbolt would open.
	var m1 boltMeta
	if m0.valid() {
		if int64(m0.pageSize)+int64(len(page)) <= size {
			if _, err := f.ReadAt(page[:], int64(m0.pageSize)); err != nil && err != io.EOF {
				return 0, "", err
			}
			m1 = parseBoltMeta(page[:])
		}
	} else {
		// Without a valid first meta the page size is unknown; bbolt
		// probes the same offsets.
		for shift := 0; shift <= 14; shift++ {
			off := int64(1024) << shift
			if off+int64(len(page)) > size {
				break
			}
			if _, err := f.ReadAt(page[:], off); err != nil {
				return 0, "", err
			}
			if m := parseBoltMeta(page[:]); m.valid() && int64(m.pageSize) == off {
				m1 = m
				break
			}
		}
	}
	m := m0
	switch {
	case m0.valid() && m1.valid():
		if m1.txid > m0.txid {
			m = m1
		}
	case m1.valid():
		m = m1
	case !m0.valid():
		return sniffDamaged, "both bbolt meta pages are invalid", nil
	}
	if m.pgid < 2 || m.root >= m.pgid || (m.freelist != boltNoFreelist && m.freelist >= m.pgid) {
		return sniffDamaged, fmt.Sprintf("meta page is inconsistent (root page %d, freelist page %d, %d pages)",
			m.root, m.freelist, m.pgid), nil
	}
	if m.pgid > uint64(size)/uint64(m.pageSize) {
		return sniffDamaged, fmt.Sprintf("file is %d bytes but its meta page counts %d pages of %d bytes: it was truncated",
			size, m.pgid, m.pageSize), nil
	}
	return sniffBolt, "", nil
}
