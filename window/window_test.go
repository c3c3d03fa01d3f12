package window

import (
	"reflect"
	"testing"
)

// Every key a packet can be counted under unpacks to what was packed: the
// on-disk format stores protocol, side and port separately and rebuilds the
// key from them.
func TestServiceKey(t *testing.T) {
	for p := range NumProtos {
		for s := range NumSides {
			for _, port := range []uint16{0, 1, 443, 32768, 65535} {
				k := MakeServiceKey(p, s, port)
				if k.Proto() != p || k.Side() != s || k.Port() != port {
					t.Errorf("MakeServiceKey(%v, %v, %d) unpacks to %v, %v, %d", p, s, port, k.Proto(), k.Side(), k.Port())
				}
			}
		}
	}
	if got := MakeServiceKey(ProtoTCP, SideIn, 443).String(); got != "443/tcp" {
		t.Errorf("String = %q, want 443/tcp", got)
	}
	for p := range NumProtos {
		if got, err := ParseProto(p.String()); err != nil || got != p {
			t.Errorf("ParseProto(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParseProto("sctp"); err == nil {
		t.Error("ParseProto(sctp) accepted")
	}
}

func TestPartialNames(t *testing.T) {
	for p := range PartialOutage << 1 {
		got, err := ParsePartial(p.Names())
		if err != nil || got != p {
			t.Errorf("ParsePartial(%q) = %v, %v, want %v", p.Names(), got, err, p)
		}
	}
	if got := (PartialStart | PartialOutage).String(); got != "start,outage" {
		t.Errorf("String = %q", got)
	}
	if _, err := ParsePartial([]string{"crash"}); err == nil {
		t.Error("ParsePartial(crash) accepted")
	}
}

// Stats.Add must add every counter: a field added to Stats but not to Add
// would vanish from every merged window and rollup.
func TestStatsAddEveryField(t *testing.T) {
	var one Stats
	v := reflect.ValueOf(&one).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Uint64 {
			f.SetUint(1)
		}
	}
	one.Partial = PartialStop
	sum := Stats{Partial: PartialStart}
	sum.Add(one)
	sum.Add(one)
	s := reflect.ValueOf(sum)
	for i := range s.NumField() {
		if f := s.Field(i); f.Kind() == reflect.Uint64 && f.Uint() != 2 {
			t.Errorf("Stats.Add: %s = %d, want 2", s.Type().Field(i).Name, f.Uint())
		}
	}
	if sum.Partial != PartialStart|PartialStop {
		t.Errorf("Stats.Add: Partial = %v, want start,stop", sum.Partial)
	}
	if got := one.Skipped(); got != 7 {
		t.Errorf("Skipped = %d, want 7 (NonIP, Transit, Malformed, Excluded, Local, Oversize, Spoofed)", got)
	}
}

func TestCountsAdd(t *testing.T) {
	c := Counts{TxPackets: 1, TxBytes: 100, RxPackets: 2, RxBytes: 50}
	c.Add(Counts{TxPackets: 3, TxBytes: 10, RxPackets: 4, RxBytes: 5})
	if want := (Counts{TxPackets: 4, TxBytes: 110, RxPackets: 6, RxBytes: 55}); c != want {
		t.Errorf("Add = %+v, want %+v", c, want)
	}
	if c.Bytes() != 165 || c.Packets() != 10 || c.IsZero() || !(Counts{}).IsZero() {
		t.Errorf("Bytes %d Packets %d IsZero %v", c.Bytes(), c.Packets(), c.IsZero())
	}
}
