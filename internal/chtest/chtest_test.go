package chtest

import (
	"context"
	"testing"
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
