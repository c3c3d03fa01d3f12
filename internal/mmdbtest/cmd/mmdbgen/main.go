// Command mmdbgen writes a country and an ASN .mmdb covering the documentation
// ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32), cut
// into many networks so lookups walk a tree of realistic depth. The benchmark
// and load-test scripts use them: no real GeoIP data may be shipped. Silent
// on success.
//
//	mmdbgen -country country.mmdb -asn asn.mmdb
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"

	"github.com/dstwatch/dstwatch/internal/mmdbtest"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mmdbgen:", err)
		os.Exit(1)
	}
}

var codes = []string{"DE", "US", "FR", "NL", "GB", "JP", "BR", "IN", "CN", "RU", "SE", "PL", "IT", "ES", "CA", "AU", "KR", "SG", "ZA", "CH"}

func run(args []string) error {
	fs := flag.NewFlagSet("mmdbgen", flag.ContinueOnError)
	country := fs.String("country", "", "country database `file` to write")
	asn := fs.String("asn", "", "ASN database `file` to write")
	bits6 := fs.Int("v6-bits", 48, "cut 2001:db8::/32 into networks of this prefix length (33..64)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *country == "" && *asn == "" {
		return fmt.Errorf("usage: mmdbgen [-country FILE] [-asn FILE] [-v6-bits N]")
	}
	if *bits6 < 33 || *bits6 > 64 {
		return fmt.Errorf("-v6-bits must be within 33..64")
	}
	var nets []string
	for _, b := range [][3]byte{{192, 0, 2}, {198, 51, 100}, {203, 0, 113}} {
		for h := 0; h < 256; h += 16 {
			nets = append(nets, netip.PrefixFrom(netip.AddrFrom4([4]byte{b[0], b[1], b[2], byte(h)}), 28).String())
		}
	}
	// pcapgen scatters IPv6 remotes over bytes 4..7, so /48s (65536 of
	// them) give every remote its own walk to depth 48.
	n := 1 << (*bits6 - 32)
	for i := range n {
		var a [16]byte
		a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
		binary.BigEndian.PutUint32(a[4:], uint32(i)<<(64-*bits6))
		nets = append(nets, netip.PrefixFrom(netip.AddrFrom16(a), *bits6).String())
	}
	if *country != "" {
		m := make(map[string]string, len(nets))
		for i, k := range nets {
			m[k] = codes[i%len(codes)]
		}
		if err := mmdbtest.Country(*country, m); err != nil {
			return err
		}
	}
	if *asn != "" {
		m := make(map[string]mmdbtest.Entry, len(nets))
		for i, k := range nets {
			m[k] = mmdbtest.Entry{ASN: 64496 + uint32(i%16), ASOrg: fmt.Sprintf("Example Net %d", i%16)}
		}
		if err := mmdbtest.ASN(*asn, m); err != nil {
			return err
		}
	}
	return nil
}
