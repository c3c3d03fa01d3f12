package chtest

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"testing"

	"github.com/dstwatch/dstwatch/internal/netnstest"
)

// Two servers start as the two shards of cluster "fleet": a Distributed
// table over them reads what each holds, and a restart keeps the data.
func TestCluster(t *testing.T) {
	s := Cluster(t, 2)
	for i, srv := range s {
		srv.Exec("CREATE DATABASE IF NOT EXISTS t",
			"CREATE TABLE t.x (n UInt64) ENGINE = MergeTree ORDER BY n",
			"CREATE TABLE t.all AS t.x ENGINE = Distributed(fleet, t, x)")
		// 18.16 takes inserts as data blocks only: a batch, not VALUES.
		c, err := srv.Open("t")
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.PrepareBatch(context.Background(), "INSERT INTO t.x (n)")
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Append(uint64(i + 1)); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	s[0].Stop()
	s[0].Restart()
	c, err := s[0].Open("t")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sum uint64
	if err := c.QueryRow(context.Background(), "SELECT sum(n) FROM t.all").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if sum != 3 {
		t.Fatalf("sum over the Distributed table = %d, want 3", sum)
	}
}

// TestPortTakenIsKnown: a server that cannot bind its port (another
// process holds it) is told apart, so that cluster starts again on other
// ports instead of failing the test.
func TestPortTakenIsKnown(t *testing.T) {
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		netnstest.Unable(t, "needs ClickHouse: apt-get install clickhouse-server")
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s := &Server{Dir: t.TempDir(), t: t}
	s.Port, s.http, s.ipc = busy.Addr().(*net.TCPAddr).Port, freePort(t), freePort(t)
	s.writeConfig("")
	s.start()
	t.Cleanup(s.discard)
	if err := s.ready(); !errors.Is(err, errPortTaken) {
		t.Fatalf("ready() = %v, want errPortTaken", err)
	}
}
