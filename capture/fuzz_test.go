package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func FuzzClassify(f *testing.F) {
	for _, tc := range classifyCases() {
		f.Add(uint16(tc.link), tc.frame)
	}
	c := testClassifier()
	f.Fuzz(func(t *testing.T, link uint16, frame []byte) {
		ev := Event{TS: 5, Len: 777, Remote: [16]byte{9}, Kind: Drops}
		c.Classify(LinkType(link), frame, 0, DirUnknown, &ev)
		checkSane(t, ev)
		// A received frame stamped with a wire shorter than it claims.
		c.Classify(LinkType(link), frame, len(frame)/2, DirIn, &ev)
		checkSane(t, ev)
		if ev.TS != 5 {
			t.Fatalf("TS changed to %d", ev.TS)
		}
	})
}

// checkSane holds for every event from a frame, whatever its bytes.
func checkSane(t *testing.T, ev Event) {
	t.Helper()
	var zero [16]byte
	switch ev.Kind {
	case Egress, Ingress:
		// The remote may be :: or 0.0.0.0: odd, but what the header says.
		if ev.Len > 65535+40 {
			t.Fatalf("%v with remote %v len %d", ev.Kind, ev.Addr(), ev.Len)
		}
	case SkipNonIP, SkipMalformed, SkipOversize:
		if ev.Remote != zero || ev.Len != 0 {
			t.Fatalf("%v with remote %v len %d", ev.Kind, ev.Addr(), ev.Len)
		}
	case SkipTransit, SkipLocal, SkipExcluded, SkipSpoofed:
		if ev.Remote != zero || ev.Len > 65535+40 {
			t.Fatalf("%v with remote %v len %d", ev.Kind, ev.Addr(), ev.Len)
		}
	default:
		t.Fatalf("kind %v from a frame", ev.Kind)
	}
}

func FuzzFile(f *testing.F) {
	le := binary.LittleEndian
	frames := []rec{
		{ts: 1, data: eth(etherIPv4, ipv4(local4, far4, 10, v4opts{}))},
		{ts: 2, data: arp()},
		{ts: 3, data: eth(etherIPv6, ipv6(far6, local6, 17, nil, 10), ether8021Q, 3)},
	}
	f.Add(pcapFile(le, false, 1, frames))
	f.Add(pcapFile(binary.BigEndian, true, 113, []rec{{ts: 1, data: sll(etherIPv4, ipv4(far4, local4, 0, v4opts{}))}}))
	f.Add(cat(ngSHBBytes(le),
		ngIDBBytes(le, ngIDBSpec{link: 1, tsres: 0x80 | 20}),
		ngIDBBytes(le, ngIDBSpec{link: 101, tsres: 9, snap: 30}),
		ngEPBBytes(le, 0, 1, frames[0].data, 0),
		ngEPBBytes(le, 1, 1, ipv4(far4, local4, 0, v4opts{}), 0),
		ngSPBBytes(le, frames[2].data, 100),
		ngBlockBytes(le, 5, make([]byte, 8))))
	f.Add([]byte("garbage"))
	c := testClassifier()
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.pcap")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := OpenFile(path)
		if err != nil {
			return
		}
		defer file.Close()
		p := NewPipe(2)
		n := 0
		done := make(chan struct{})
		go func() {
			defer close(done)
			for b := range p.Full {
				for _, ev := range b {
					checkSane(t, ev)
				}
				n += len(b)
				p.Put(b)
			}
		}()
		err = file.Run(context.Background(), c, p)
		close(p.Full)
		<-done
		// Every record needs at least 12 bytes (pcapng simple packet block)
		// and no event comes from nothing.
		if n > len(data)/12 {
			t.Fatalf("%d events from %d bytes", n, len(data))
		}
		if err != nil && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformedFile) {
			// Other errors are fine (unsupported link or version) but
			// must name the file.
			if len(err.Error()) < len(path) || err.Error()[:len(path)] != path {
				t.Fatalf("error does not name the file: %v", err)
			}
		}
	})
}
