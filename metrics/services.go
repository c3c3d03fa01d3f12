package metrics

import (
	"cmp"
	"slices"

	"github.com/dstwatch/dstwatch/window"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultServiceTop is the default of --metrics-service-top.
const DefaultServiceTop = 20

// serviceMetrics are dstwatch_service_traffic_{bytes,packets}_total with
// labels direction, service (443/tcp, 0/icmp, or "other") and side (in,
// out, none for the portless classes, other with service="other"). The
// services with series of their own are bounded as the ASNs are (asnSet):
// the first ServiceTop services to rank in a stored window's top
// ServiceTop (by bytes, both ways) get series for the process lifetime;
// every other service's traffic is in service="other".
type serviceMetrics struct {
	max         int
	in          map[svcLabel]bool
	bytes, pkts *prometheus.CounterVec
}

type svcLabel struct{ service, side string }

func newServiceMetrics(max int) *serviceMetrics {
	return &serviceMetrics{
		max: max,
		in:  map[svcLabel]bool{},
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dstwatch_service_traffic_bytes_total",
			Help: "IP bytes by direction (tx: sent by this host), service (PORT/PROTO; 0/icmp and 0/other have no port) and side (in: a service of this host, out: a service it uses, scan: probes of closed ports, none: no port), for the first --metrics-service-top services to rank in a window's top; the rest in service=\"other\"."},
			[]string{"direction", "service", "side"}),
		pkts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dstwatch_service_traffic_packets_total",
			Help: "IP packets by direction, service and side, as dstwatch_service_traffic_bytes_total."},
			[]string{"direction", "service", "side"}),
	}
}

func sideLabel(s window.Service) string {
	if l := s.Key.Side().String(); l != "" {
		return l
	}
	return "none"
}

// observe adds a window's services. Windows stored by an older dstwatch
// have none; their traffic is in no service series.
func (m *serviceMetrics) observe(ss []window.Service) {
	// ss is heaviest first: its first max services are the window's top.
	for i := range ss[:min(len(ss), m.max)] {
		if len(m.in) >= m.max {
			break
		}
		m.in[svcLabel{ss[i].Key.String(), sideLabel(ss[i])}] = true
	}
	by := map[svcLabel]*window.Counts{}
	for i := range ss {
		l := svcLabel{ss[i].Key.String(), sideLabel(ss[i])}
		if !m.in[l] {
			l = svcLabel{Other, Other}
		}
		if by[l] == nil {
			by[l] = &window.Counts{}
		}
		by[l].Add(ss[i].Counts)
	}
	labels := make([]svcLabel, 0, len(by))
	for l := range by {
		labels = append(labels, l)
	}
	slices.SortFunc(labels, func(a, b svcLabel) int {
		return cmp.Or(cmp.Compare(a.service, b.service), cmp.Compare(a.side, b.side))
	})
	for _, l := range labels {
		c := by[l]
		m.bytes.WithLabelValues("tx", l.service, l.side).Add(float64(c.TxBytes))
		m.bytes.WithLabelValues("rx", l.service, l.side).Add(float64(c.RxBytes))
		m.pkts.WithLabelValues("tx", l.service, l.side).Add(float64(c.TxPackets))
		m.pkts.WithLabelValues("rx", l.service, l.side).Add(float64(c.RxPackets))
	}
}
