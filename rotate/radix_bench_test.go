package rotate

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// BenchmarkSortServiceKeys: sortRanks' packed keys of a flood's window
// (150k one-packet services), by slices.Sort and by radixSort.
func BenchmarkSortServiceKeys(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	keys := make([]uint64, 150_000)
	for i := range keys {
		keys[i] = uint64(^uint32(40+rng.IntN(40)))<<32 | uint64(rng.IntN(1<<20))
	}
	s, spare := make([]uint64, len(keys)), make([]uint64, len(keys))
	b.Run("slices.Sort", func(b *testing.B) {
		for b.Loop() {
			copy(s, keys)
			slices.Sort(s)
		}
	})
	b.Run("radixSort", func(b *testing.B) {
		for b.Loop() {
			copy(s, keys)
			spare = radixSort(s, spare)
		}
	})
}
