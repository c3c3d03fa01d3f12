package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/dstwatch/dstwatch/internal/mmdbtest"
	"github.com/dstwatch/dstwatch/internal/netnstest"
)

// .mmdb files carrying hostile strings (a country that forges a record-log
// line, ANSI escapes, an organisation that is not UTF-8, a database type
// that is not UTF-8, a country that looks like an option): the daemon with
// --metrics keeps running and its scrapes answer 200, the record log has no
// forged line, and query output carries no escape byte.
func TestLiveHostileGeoStrings(t *testing.T) {
	t.Parallel() // in namespaces of its own
	p := netnstest.New(t)
	dir := t.TempDir()
	country, asn := filepath.Join(dir, "country.mmdb"), filepath.Join(dir, "asn.mmdb")
	const forged = "203.0.113.99"
	if err := mmdbtest.Country(country, map[string]string{
		netnstest.B4.String() + "/32":  "NL\n2026-11-22T13:20:00Z  tx 9 GB 9 pkts  rx 0 B 0 pkts  JP " + forged,
		netnstest.B4b.String() + "/32": "--output=/tmp/x",
		"2001:db8::/32":                "\x1b[2J",
	}); err != nil {
		t.Fatal(err)
	}
	asnRec := func(n uint32, org string) mmdbtype.DataType {
		return mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(n), "autonomous_system_organization": mmdbtype.String(org)}
	}
	if err := mmdbtest.Write(asn, "GeoLite2-\xff\xfeASN", map[string]mmdbtype.DataType{
		netnstest.B4.String() + "/32":  asnRec(64496, "Bad \xc3\x28 Org \xff"),
		netnstest.B4b.String() + "/32": asnRec(64497, "Evil\x1b[31m Red\x1b]0;owned\x07"),
		"2001:db8::/32":                asnRec(64501, "Two\nLines"),
	}); err != nil {
		t.Fatal(err)
	}
	db, recLog := filepath.Join(dir, "live.db"), filepath.Join(dir, "records.log")
	target := fmt.Sprintf("127.0.0.1:%d", freePort(t, p.A))
	d := startDaemon(t, p.A, "-i", p.IfA, "--db", db, "--record-log", recLog, "--geoip", country, "--geoip", asn,
		"--window", "1s", "--metrics", target)

	sink(t, p.A, netnstest.A4)
	sink(t, p.A, netnstest.A6)
	send(t, p.B, netnstest.B4, netnstest.A4, 5, 100)
	send(t, p.B, netnstest.B4b, netnstest.A4, 5, 100)
	send(t, p.B, netnstest.B6, netnstest.A6, 5, 100)

	// Wait until all three remotes are stored.
	await(t, 15*time.Second, "three remotes stored", func() bool {
		select {
		case err := <-d.done:
			t.Fatalf("daemon exited (%v):\n%s", err, d.stderr.String())
		default:
		}
		return len(queryRemotes(t, db)) >= 3
	})
	client := nsClient(p.A)
	// The writer observes a window into the metrics after storing it, so
	// a scrape just after the store may not have it yet.
	await(t, 15*time.Second, "the stored ASes in a scrape", func() bool {
		resp, err := client.Get("http://" + target + "/metrics")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(body), `org="Two Lines"`) && strings.Contains(string(body), `org="Bad `+"\uFFFD"+`( Org `+"\uFFFD"+`"`)
	})
	for i := range 3 {
		resp, err := client.Get("http://" + target + "/metrics")
		if err != nil {
			t.Fatalf("scrape %d: %v\n%s", i, err, d.stderr.String())
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("scrape %d: %s\n%s", i, resp.Status, body)
		}
		if !utf8.Valid(body) || strings.ContainsRune(string(body), '\x1b') {
			t.Errorf("scrape %d holds invalid UTF-8 or escapes", i)
		}
		for _, want := range []string{`org="Bad ` + "\uFFFD" + `( Org ` + "\uFFFD" + `"`, `org="Two Lines"`, `type="GeoLite2-` + "\uFFFD\uFFFD" + `ASN"`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("scrape %d lacks %s", i, want)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	select {
	case err := <-d.done:
		t.Fatalf("daemon exited (%v):\n%s", err, d.stderr.String())
	default:
	}

	for addr, r := range queryRemotes(t, db) {
		if r.Country != "" {
			t.Errorf("remote %s: country %q, want unknown", addr, r.Country)
		}
	}
	logText, err := os.ReadFile(recLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(logText), "\n"), "\n") {
		if strings.Contains(l, forged) || strings.Contains(l, "--output") || strings.ContainsRune(l, '\x1b') {
			t.Errorf("record log line from a database string: %q", l)
		}
	}
	for _, args := range [][]string{
		{"--by", "remote"}, {"--by", "asn"}, {"--by", "country"}, {"--by", "asn", "--format", "csv"},
	} {
		code, out, stderr := runCmd(t, append([]string{"query", "--db", db, "--from", "-1h", "--to", "+1h"}, args...)...)
		if code != 0 {
			t.Fatalf("query %v: exit %d: %s", args, code, stderr)
		}
		if !utf8.ValidString(out) || strings.ContainsAny(out, "\x1b\x07") || strings.Contains(out, forged) {
			t.Errorf("query %v output holds a raw database string:\n%q", args, out)
		}
	}
	d.stop(t)
}
