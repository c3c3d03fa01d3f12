package report

import (
	"html/template"
	"io"
	"time"

	"github.com/dstwatch/dstwatch/internal/units"
	"github.com/dstwatch/dstwatch/query"
	"github.com/dstwatch/dstwatch/window"
)

// Style is the CSS of the HTML report, also used by the dashboard.
const Style = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0;padding:16px 24px;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:4px 0} th,td{padding:3px 10px;text-align:right;border-bottom:1px solid #eee}
th{background:#f4f4f4;font-weight:600} td.l,th.l{text-align:left}
.totals{display:flex;gap:24px;flex-wrap:wrap} .totals div{background:#f6f8fa;border:1px solid #ddd;border-radius:6px;padding:8px 14px}
.totals b{display:block;font-size:20px} .tx{color:#d9534f} .rx{color:#337ab7} .muted{color:#777;font-size:12px}
svg.chart{max-width:100%;height:auto;display:block}
ul.notes li{margin:2px 0}
`

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"bytes": units.Bytes, "count": units.Count, "cc": CC, "share": share,
	"name": func(r query.Row, by string) string { return RowName(r, query.By(by)) },
	"svc":  ServiceName,
	"t":    func(t time.Time, loc *time.Location) string { return t.In(loc).Format("2006-01-02 15:04:05") },
	"dur":  Duration,
	"rate": Rate,
	"total": func(c window.Counts) uint64 {
		return c.Bytes()
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{.Style}}</style></head><body>
<h1>{{.Title}}</h1>
<p class="muted">Read from {{.Units}}. Generated {{t .R.Generated .Loc}}. Bytes are IP bytes; sent is <span class="tx">tx</span>, received <span class="rx">rx</span>.</p>
<div class="totals">
<div>Sent<b class="tx" id="tx-bytes" data-exact="{{.R.Total.TxBytes}}">{{bytes .R.Total.TxBytes}}</b><span class="muted">{{.R.Total.TxPackets}} packets</span></div>
<div>Received<b class="rx" id="rx-bytes" data-exact="{{.R.Total.RxBytes}}">{{bytes .R.Total.RxBytes}}</b><span class="muted">{{.R.Total.RxPackets}} packets</span></div>
</div>
<h2>Traffic over time</h2>
{{.Series}}
<h2>Top countries</h2>
{{.Bars}}
<h2>World map</h2>
{{.Map}}
<p class="muted">One square per country, arranged roughly as the world lies; colour by bytes (both ways). Unknown countries and those without a square are in the tables only.</p>
{{$total := total .R.Total}}{{$loc := .Loc}}
<h2>Top remotes</h2>
<table id="remotes"><tr><th class="l">Remote</th><th class="l">Country</th><th>Sent</th><th>Received</th><th>Share</th></tr>
{{range .R.Remotes}}<tr><td class="l">{{name . "remote"}}</td><td class="l">{{if not .IsOther}}{{cc .Country}}{{end}}</td><td data-exact="{{.TxBytes}}">{{bytes .TxBytes}}</td><td data-exact="{{.RxBytes}}">{{bytes .RxBytes}}</td><td>{{share .Bytes $total}}</td></tr>
{{end}}</table>
<h2>Top countries</h2>
<table id="countries"><tr><th class="l">Country</th><th>Remotes</th><th>Sent</th><th>Received</th><th>Share</th></tr>
{{range .R.Countries}}<tr><td class="l">{{name . "country"}}</td><td>{{.Remotes}}</td><td data-exact="{{.TxBytes}}">{{bytes .TxBytes}}</td><td data-exact="{{.RxBytes}}">{{bytes .RxBytes}}</td><td>{{share .Bytes $total}}</td></tr>
{{end}}</table>
<h2>Top ASes</h2>
<table id="asns"><tr><th class="l">AS</th><th class="l">Organisation</th><th>Sent</th><th>Received</th><th>Share</th></tr>
{{range .R.ASNs}}<tr><td class="l">{{name . "asn"}}</td><td class="l">{{.ASOrg}}</td><td data-exact="{{.TxBytes}}">{{bytes .TxBytes}}</td><td data-exact="{{.RxBytes}}">{{bytes .RxBytes}}</td><td>{{share .Bytes $total}}</td></tr>
{{end}}</table>
<h2>Top services</h2>
{{if .R.Services}}<table id="services"><tr><th class="l">Service</th><th>Sent</th><th>Received</th><th>Share</th></tr>
{{range .R.Services}}<tr><td class="l">{{svc .}}</td><td data-exact="{{.TxBytes}}">{{bytes .TxBytes}}</td><td data-exact="{{.RxBytes}}">{{bytes .RxBytes}}</td><td>{{share .Bytes $total}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No per-service data in this range.</p>{{end}}
<h2>Busiest windows</h2>
{{if .R.Busiest}}<table id="busiest"><tr><th class="l">Window</th><th>Length</th><th>Sent</th><th>Received</th><th>Sent rate</th><th>Received rate</th></tr>
{{range .R.Busiest}}<tr><td class="l">{{t .Start $loc}}</td><td>{{dur .Length}}</td><td>{{bytes .TxBytes}}</td><td>{{bytes .RxBytes}}</td><td>{{rate .TxBytes .Length}}</td><td>{{rate .RxBytes .Length}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No raw windows in this range.</p>{{end}}
<h2>Data quality</h2>
<ul class="notes">{{range .Notes}}<li>{{.}}</li>{{end}}</ul>
{{if .R.Gaps}}<table id="gaps"><tr><th class="l">Gap from</th><th class="l">to</th><th>Length</th></tr>
{{range .Gaps}}<tr><td class="l">{{t .From $loc}}</td><td class="l">{{t .To $loc}}</td><td>{{dur (.To.Sub .From)}}</td></tr>
{{end}}</table>{{end}}
</body></html>
`))

// WriteHTML writes the report as one self-contained HTML file: inline CSS
// and SVG, no script, nothing fetched.
func (r *Report) WriteHTML(w io.Writer, loc *time.Location) error {
	var bars []Bar
	for _, c := range r.Countries {
		bars = append(bars, Bar{Label: RowName(c, query.ByCountry), Tx: c.TxBytes, Rx: c.RxBytes})
	}
	gaps := r.Gaps
	if len(gaps) > 50 {
		gaps = gaps[:50]
	}
	return htmlTmpl.Execute(w, map[string]any{
		"Title": r.Title(loc), "Style": template.CSS(Style), "R": r, "Loc": loc,
		"Units":  describeUnits(r.Summary),
		"Series": template.HTML(SeriesSVG(r.Series, r.From, r.To, loc)),
		"Bars":   template.HTML(BarsSVG(bars)),
		"Map":    template.HTML(MapSVG(r.CountryBytes)),
		"Notes":  r.Notes(loc),
		"Gaps":   gaps,
	})
}
