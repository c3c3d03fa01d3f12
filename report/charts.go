package report

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"

	"github.com/dstwatch/dstwatch/internal/units"
)

// The charts are SVG drawn here, with no script: they render in a mail
// client, in a file opened offline, and in the dashboard alike.

const (
	colTx = "#d9534f" // sent
	colRx = "#337ab7" // received
)

// Bar is one bar of a bar chart.
type Bar struct {
	Label  string
	Tx, Rx uint64
}

// SeriesSVG draws traffic over time: bytes per second each way, one point
// per bucket; times are labelled in loc.
func SeriesSVG(points []Point, from, to time.Time, loc *time.Location) string {
	const W, H, left, right, top, bottom = 720, 220, 70, 10, 10, 30
	pw, ph := float64(W-left-right), float64(H-top-bottom)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart series" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="traffic over time">`, W, H, W, H)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%g" height="%g" fill="#fafafa" stroke="#ccc"/>`, left, top, pw, ph)
	span := to.Sub(from).Seconds()
	if span <= 0 {
		span = 1
	}
	var peak float64
	for _, p := range points {
		peak = max(peak, float64(p.TxBytes)/p.Length.Seconds(), float64(p.RxBytes)/p.Length.Seconds())
	}
	scale := niceCeil(peak)
	// y grid and labels
	for i := 0; i <= 4; i++ {
		v := scale * float64(i) / 4
		y := float64(top) + ph - ph*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%d" x2="%g" y1="%.1f" y2="%.1f" stroke="#e5e5e5"/>`, left, float64(left)+pw, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="10" text-anchor="end" fill="#555">%s/s</text>`, left-4, y+3, units.Bytes(uint64(v)))
	}
	// x labels: five ticks
	for i := 0; i <= 4; i++ {
		t := from.Add(time.Duration(float64(to.Sub(from)) * float64(i) / 4))
		x := float64(left) + pw*float64(i)/4
		layout := "15:04"
		if to.Sub(from) > 36*time.Hour {
			layout = "Jan 2"
		} else if to.Sub(from) > 20*time.Hour {
			layout = "Jan 2 15:04"
		}
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10" text-anchor="%s" fill="#555">%s</text>`, x, H-12, anchor, t.In(loc).Format(layout))
	}
	line := func(col string, get func(Point) uint64) {
		if len(points) == 0 {
			return
		}
		var pts []string
		for _, p := range points {
			mid := p.Start.Add(p.Length / 2).Sub(from).Seconds()
			x := float64(left) + pw*math.Min(math.Max(mid/span, 0), 1)
			v := float64(get(p)) / p.Length.Seconds()
			y := float64(top) + ph - ph*v/scale
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		if len(pts) == 1 {
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`, strings.Split(pts[0], ",")[0], strings.Split(pts[0], ",")[1], col)
			return
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, col, strings.Join(pts, " "))
	}
	line(colTx, func(p Point) uint64 { return p.TxBytes })
	line(colRx, func(p Point) uint64 { return p.RxBytes })
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" fill="%s">&#9632; sent</text>`, left+8, top+14, colTx)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" fill="%s">&#9632; received</text>`, left+60, top+14, colRx)
	if len(points) == 0 {
		fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="12" text-anchor="middle" fill="#888">no raw windows in this range</text>`, float64(left)+pw/2, float64(top)+ph/2)
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// BarsSVG draws horizontal bars, sent and received stacked, scaled to the
// largest; each bar is labelled with its total.
func BarsSVG(bars []Bar) string {
	const W, rowH, labelW, valueW = 720, 22, 150, 90
	H := max(rowH*len(bars)+10, 30)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart bars" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="top by bytes">`, W, H, W, H)
	var most uint64
	for _, r := range bars {
		most = max(most, r.Tx+r.Rx)
	}
	pw := float64(W - labelW - valueW)
	for i, r := range bars {
		y := 5 + i*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" text-anchor="end">%s</text>`, labelW-6, y+15, html.EscapeString(r.Label))
		x := float64(labelW)
		for _, part := range []struct {
			v   uint64
			col string
		}{{r.Tx, colTx}, {r.Rx, colRx}} {
			wd := 0.0
			if most > 0 {
				wd = pw * float64(part.v) / float64(most)
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`, x, y+3, wd, rowH-6, part.col)
			x += wd
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" fill="#333">%s</text>`, x+4, y+15, units.Bytes(r.Tx+r.Rx))
	}
	if len(bars) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="20" font-size="12" fill="#888">no traffic</text>`, W/2)
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// Sparkline is a row of block characters for a series of values, for the
// terminal.
func Sparkline(vs []uint64) string {
	const blocks = "▁▂▃▄▅▆▇█"
	rs := []rune(blocks)
	var most uint64
	for _, v := range vs {
		most = max(most, v)
	}
	var b strings.Builder
	for _, v := range vs {
		if most == 0 || v == 0 {
			b.WriteRune(' ')
			continue
		}
		i := int(float64(v) / float64(most) * float64(len(rs)-1))
		b.WriteRune(rs[i])
	}
	return b.String()
}
