package metrics

import (
	"testing"

	"github.com/dstwatch/dstwatch/window"
)

func svc(p window.Proto, side window.Side, port uint16, tx uint64) window.Service {
	return window.Service{Key: window.MakeServiceKey(p, side, port), Remotes: 1,
		Counts: window.Counts{TxPackets: 1, TxBytes: tx, RxPackets: 2, RxBytes: 2 * tx}}
}

// The first ServiceTop services to rank in a window's top get series;
// everything else, including later heavy services, is in service="other",
// and the totals are exact.
func TestServiceSeriesBounded(t *testing.T) {
	m := New(Config{ServiceTop: 2})
	w1 := mkWindow(0)
	w1.Services = []window.Service{
		svc(window.ProtoTCP, window.SideOut, 443, 1000),
		svc(window.ProtoTCP, window.SideIn, 8080, 500),
		svc(window.ProtoICMP, window.SideNone, 0, 10),
	}
	w2 := mkWindow(1)
	w2.Services = []window.Service{
		svc(window.ProtoUDP, window.SideOut, 53, 5000),
		svc(window.ProtoTCP, window.SideOut, 443, 100),
	}
	m.Observe(w1)
	m.Observe(w2)
	s := series(t, m)["dstwatch_service_traffic_bytes_total"]
	want := map[string]float64{
		"direction=tx,service=443/tcp,side=out": 1100,
		"direction=rx,service=443/tcp,side=out": 2200,
		"direction=tx,service=8080/tcp,side=in": 500,
		"direction=rx,service=8080/tcp,side=in": 1000,
		"direction=tx,service=other,side=other": 5010,
		"direction=rx,service=other,side=other": 10020,
	}
	if len(s) != len(want) {
		t.Errorf("series %v", s)
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("%s = %v, want %v", k, s[k], v)
		}
	}
	if p := series(t, m)["dstwatch_service_traffic_packets_total"]["direction=rx,service=other,side=other"]; p != 4 {
		t.Errorf("other rx packets %v", p)
	}
}
