package storage

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/dstwatch/dstwatch/window"
)

// secServices is the per-service section (format 3): see doc.go.
const secServices = 7

// Rollup caps for per-service rows: how many remotes one service keeps in
// an hourly or daily rollup, and how many services (the heaviest) keep
// any. The rows of a rollup are sums of the rows of its windows' top lists,
// so a remote's row holds at least (not exactly) its traffic with the
// service; totals per service are exact.
const (
	RollupServiceTop = 100
	RollupServices   = 200
)

func appendServices(buf []byte, ss []window.Service) []byte {
	if len(ss) == 0 {
		return buf
	}
	p := binary.AppendUvarint(nil, uint64(len(ss)))
	for i := range ss {
		s := &ss[i]
		p = append(p, byte(s.Key.Proto()), byte(s.Key.Side()))
		p = binary.AppendUvarint(p, uint64(s.Key.Port()))
		p = binary.AppendUvarint(p, uint64(s.Remotes))
		p = appendCounts(p, s.Counts)
		p = binary.AppendUvarint(p, uint64(len(s.Top)))
		for j := range s.Top {
			p = appendRemote(p, &s.Top[j])
		}
	}
	return appendSection(buf, secServices, p)
}

// minServiceLen is the smallest encoding of one service.
const minServiceLen = 2 + 1 + 1 + 4 + 1

func decodeServices(w *window.Window, p []byte) error {
	count, n := binary.Uvarint(p)
	if n <= 0 {
		return corrupt("services: bad count")
	}
	p = p[n:]
	if count > uint64(len(p)/minServiceLen) {
		return corrupt("services: %d services cannot fit in %d bytes", count, len(p))
	}
	w.Services = make([]window.Service, count)
	for i := range w.Services {
		s := &w.Services[i]
		if len(p) < 2 {
			return corrupt("service %d: truncated", i)
		}
		proto, side := window.Proto(p[0]), window.Side(p[1])
		if proto >= window.NumProtos || side >= window.NumSides {
			return corrupt("service %d: protocol %d side %d", i, p[0], p[1])
		}
		p = p[2:]
		port, n := uvarint(p)
		if n <= 0 || port > 65535 {
			return corrupt("service %d: bad port", i)
		}
		p = p[n:]
		s.Key = window.MakeServiceKey(proto, side, uint16(port))
		rem, n := uvarint(p)
		if n <= 0 || rem > 1<<40 {
			return corrupt("service %d: bad remote count", i)
		}
		s.Remotes = int(rem)
		p = p[n:]
		var ok bool
		if s.Counts, p, ok = decodeCounts(p); !ok {
			return corrupt("service %d: bad count", i)
		}
		top, n := uvarint(p)
		if n <= 0 || top > uint64(len(p)/minRemoteLen) {
			return corrupt("service %d: bad top count", i)
		}
		p = p[n:]
		s.Other = s.Counts
		if top > 0 {
			s.Top = make([]window.Remote, top)
		}
		for j := range s.Top {
			var err error
			if p, err = decodeOneRemote(&s.Top[j], p); err != nil {
				return corrupt("service %d remote %d: %v", i, j, err)
			}
			r := &s.Top[j].Counts
			o := &s.Other
			if r.TxPackets > o.TxPackets || r.TxBytes > o.TxBytes || r.RxPackets > o.RxPackets || r.RxBytes > o.RxBytes {
				return corrupt("service %d: its remotes add up to more than its total", i)
			}
			o.TxPackets -= r.TxPackets
			o.TxBytes -= r.TxBytes
			o.RxPackets -= r.RxPackets
			o.RxBytes -= r.RxBytes
		}
	}
	if len(p) != 0 {
		return corrupt("services: %d trailing bytes", len(p))
	}
	return nil
}

// decodeOneRemote decodes one remote as section 4 encodes it.
func decodeOneRemote(r *window.Remote, p []byte) ([]byte, error) {
	if len(p) < 1 {
		return nil, corrupt("truncated")
	}
	switch p[0] {
	case family4:
		if len(p) < 1+4+2 {
			return nil, corrupt("truncated")
		}
		r.Addr = netip.AddrFrom4([4]byte(p[1:5]))
		p = p[5:]
	case family6:
		if len(p) < 1+16+2 {
			return nil, corrupt("truncated")
		}
		r.Addr = netip.AddrFrom16([16]byte(p[1:17]))
		if r.Addr.Is4In6() {
			return nil, corrupt("IPv4-mapped address in the IPv6 family")
		}
		p = p[17:]
	default:
		return nil, corrupt("address family %d", p[0])
	}
	switch {
	case isUpper(p[0]) && isUpper(p[1]):
		r.Country = countries[int(p[0]-'A')*26+int(p[1]-'A')]
	case p[0] != 0 || p[1] != 0:
		return nil, corrupt("country %q", p[:2])
	}
	p = p[2:]
	asn, n := uvarint(p)
	if n <= 0 || asn > 1<<32-1 {
		return nil, corrupt("bad ASN")
	}
	r.ASN = uint32(asn)
	p = p[n:]
	var ok bool
	if r.Counts, p, ok = decodeCounts(p); !ok {
		return nil, corrupt("bad count")
	}
	return p, nil
}

// svcAcc adds services up (rollups, and a window stored twice).
type svcAcc struct {
	list  []window.Service
	at    map[window.ServiceKey]int
	addrs []map[netip.Addr]int // per service: address -> index in Top
}

func newSvcAcc(base []window.Service) *svcAcc {
	a := &svcAcc{at: map[window.ServiceKey]int{}}
	a.add(base)
	return a
}

func (a *svcAcc) add(ss []window.Service) {
	for i := range ss {
		s := &ss[i]
		j, ok := a.at[s.Key]
		if !ok {
			j = len(a.list)
			a.at[s.Key] = j
			a.list = append(a.list, window.Service{Key: s.Key})
			a.addrs = append(a.addrs, map[netip.Addr]int{})
		}
		e := &a.list[j]
		e.Counts.Add(s.Counts)
		e.Remotes = max(e.Remotes, s.Remotes)
		at := a.addrs[j]
		for _, r := range s.Top {
			r.Addr = r.Addr.Unmap()
			if k, ok := at[r.Addr]; ok {
				x := &e.Top[k]
				x.Counts.Add(r.Counts)
				if r.Country != "" {
					x.Country = r.Country
				}
				if r.ASN != 0 {
					x.ASN, x.ASOrg = r.ASN, r.ASOrg
				}
				continue
			}
			at[r.Addr] = len(e.Top)
			e.Top = append(e.Top, r)
		}
		e.Remotes = max(e.Remotes, len(e.Top))
	}
}

// result sorts the services heaviest first, keeps at most top rows for the
// services services heaviest (the rest go to Other), and sets Other.
func (a *svcAcc) result(top, services int) []window.Service {
	out := a.list
	sortServices(out)
	for i := range out {
		s := &out[i]
		sortRemotes(s.Top)
		keep := min(len(s.Top), top)
		if i >= services {
			keep = 0
		}
		if keep == 0 {
			s.Top = nil
		} else {
			s.Top = s.Top[:keep:keep]
		}
		s.Other = s.Counts
		for _, r := range s.Top {
			s.Other.TxPackets -= r.TxPackets
			s.Other.TxBytes -= r.TxBytes
			s.Other.RxPackets -= r.RxPackets
			s.Other.RxBytes -= r.RxBytes
		}
	}
	return out
}

func sortServices(ss []window.Service) {
	slices.SortFunc(ss, func(a, b window.Service) int {
		if c := cmp.Compare(b.Bytes(), a.Bytes()); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
}

// mergeServices is merge (windows.go) for services: sums per service and
// per remote row, the larger remote count, and as many rows as the larger
// list had.
func mergeServices(old, newer []window.Service) []window.Service {
	if len(old) == 0 && len(newer) == 0 {
		return nil
	}
	top := 0
	for _, l := range [][]window.Service{old, newer} {
		for i := range l {
			top = max(top, len(l[i].Top))
		}
	}
	a := newSvcAcc(old)
	a.add(newer)
	return a.result(top, max(len(old), len(newer), window.ServicesWithTop))
}

// The rollup side: acc (rollup.go) keeps one svcAcc.
func (a *acc) addServices(w *window.Window) {
	if a.svc == nil {
		a.svc = newSvcAcc(a.w.Services)
	}
	a.svc.add(w.Services)
}

func (a *acc) storeServices() {
	if a.svc != nil {
		a.w.Services = a.svc.result(RollupServiceTop, RollupServices)
		a.svc = nil
	}
}

// upgradeServices turns a format 2 file into format 3. Format 3 adds
// section 7 (services) to window values; stored windows and rollups of
// earlier versions have no services and keep none: nothing to rewrite.
func upgradeServices(*bolt.Tx, caps) error { return nil }
