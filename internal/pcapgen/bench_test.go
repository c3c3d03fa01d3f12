package pcapgen

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkWriteMixed measures the streaming path the benchmark script uses
// (MixedFunc + WriteFunc); ns/op is per frame.
func BenchmarkWriteMixed(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.pcap")
	next := MixedFunc(1, b.N, 140000, testLocal, testStart, 30*time.Minute, LinkEthernet)
	b.ResetTimer()
	if err := WriteFunc(path, PcapNano, LinkEthernet, b.N, next); err != nil {
		b.Fatal(err)
	}
}
