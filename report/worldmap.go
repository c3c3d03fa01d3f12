package report

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"

	"github.com/dstwatch/dstwatch/internal/units"
)

// The world map is a tile grid: one square per ISO 3166 country, placed
// roughly where the country lies, so that continents keep their shape and
// neighbours stay neighbours, while every country gets the same area (a
// small country with much traffic is as visible as a large one). It needs no
// map data: the layout below is the whole map. Countries not in it (and
// unknown ones) are not drawn; their traffic is still in the tables.
//
// Each line is a row of the grid, each token a column: an ISO code, or ".."
// for sea.
const tileLayout = `
.. .. .. .. GL .. .. .. .. .. .. IS .. .. .. FO NO SE FI .. .. .. .. .. .. .. .. .. .. .. .. ..
.. .. CA .. .. .. .. .. .. .. .. .. IE GB .. DK .. EE RU .. .. .. .. .. .. .. .. .. .. .. .. ..
.. .. US .. .. .. .. .. .. .. .. .. .. NL DE PL LT LV BY .. KZ MN .. .. .. .. .. .. .. .. .. ..
.. .. MX BM .. .. .. .. .. .. .. .. BE LU CZ SK UA MD .. GE UZ KG .. .. KP .. .. JP .. .. .. ..
.. .. GT BZ CU BS .. .. .. .. .. .. FR CH AT HU RO .. .. AM AZ TM TJ .. CN KR .. .. .. .. .. ..
.. .. SV HN JM HT DO PR .. .. .. PT ES AD LI SI HR RS BG .. TR .. AF .. .. MO HK TW .. .. .. ..
.. .. .. NI KY TC AG KN .. .. .. .. .. MC IT SM BA ME MK GR CY SY IR PK NP BT .. .. .. .. .. ..
.. .. .. CR PA AW CW DM LC .. .. .. GI MT VA .. AL XK .. .. LB IQ KW .. IN BD MM LA VN .. .. ..
.. .. .. .. .. .. VC BB GD TT .. .. .. MA DZ TN LY EG .. PS JO BH QA AE .. .. TH KH PH .. .. ..
.. .. .. .. .. CO VE GY SR GF .. .. EH MR ML NE TD SD ER IL SA YE OM .. LK MV MY SG BN .. .. ..
.. .. .. .. .. EC PE BR .. .. .. CV SN GM BF NG CM CF SS ET DJ SO .. .. .. .. ID TL PG .. .. ..
.. .. .. .. .. .. BO PY .. .. .. .. GW GN CI GH TG BJ GQ CD UG KE .. .. .. .. .. .. .. SB .. ..
.. .. .. .. .. .. CL AR UY .. .. .. .. SL LR ST GA CG RW BI TZ SC .. .. .. .. .. AU .. VU FJ ..
.. .. .. .. .. .. .. FK .. .. .. .. .. .. .. .. AO ZM MW MZ KM MG MU RE .. .. .. .. NC .. WS ..
.. .. .. .. .. .. .. .. .. .. .. .. .. .. .. .. NA ZW BW SZ LS YT .. .. .. .. .. .. .. NZ TO ..
.. .. .. .. .. .. .. .. .. .. .. .. .. .. .. .. .. ZA .. .. .. .. .. .. .. .. .. .. .. .. .. PF
`

// tile is where a country sits on the grid.
type tile struct{ col, row int }

var tiles, tileCols, tileRows = parseTiles(tileLayout)

func parseTiles(s string) (map[string]tile, int, int) {
	m := map[string]tile{}
	cols, rows := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		for c, tok := range strings.Fields(line) {
			if len(tok) == 2 && tok != ".." {
				m[tok] = tile{c, rows}
			}
			cols = max(cols, c+1)
		}
		rows++
	}
	return m, cols, rows
}

// MapCountries is how many countries the map can show.
func MapCountries() int { return len(tiles) }

// OnMap reports whether country cc has a tile.
func OnMap(cc string) bool { _, ok := tiles[cc]; return ok }

// MapSVG draws the tile-grid world map, each country coloured by its bytes
// (both ways) on a logarithmic scale; countries without traffic are grey.
func MapSVG(bytes map[string]uint64) string {
	const cell, gap, pad = 22, 2, 4
	W, H := pad*2+tileCols*cell, pad*2+tileRows*cell+28
	var most uint64
	for cc, v := range bytes {
		if OnMap(cc) {
			most = max(most, v)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart worldmap" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="world map coloured by bytes">`, W, H, W, H)
	codes := make([]string, 0, len(tiles))
	for cc := range tiles {
		codes = append(codes, cc)
	}
	// A stable order, so the same data draws the same file.
	slices.Sort(codes)
	for _, cc := range codes {
		t := tiles[cc]
		x, y := pad+t.col*cell, pad+t.row*cell
		v := bytes[cc]
		fill, text := "#e6e6e6", "#999"
		if v > 0 {
			fill, text = heat(v, most), "#fff"
		}
		title := cc
		if v > 0 {
			title += ": " + units.Bytes(v)
		}
		fmt.Fprintf(&b, `<g data-cc="%s"><title>%s</title><rect x="%d" y="%d" width="%d" height="%d" rx="3" fill="%s"/>`, cc, html.EscapeString(title), x, y, cell-gap, cell-gap, fill)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="8" text-anchor="middle" fill="%s">%s</text></g>`, x+(cell-gap)/2, y+13, text, cc)
	}
	// legend
	ly := pad + tileRows*cell + 8
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" fill="#555">bytes each way added, log scale:</text>`, pad, ly+10)
	for i := range 6 {
		v := uint64(math.Pow(float64(max(most, 1)), float64(i+1)/6))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="14" height="12" fill="%s"/>`, pad+180+i*16, ly, heat(v, max(most, 1)))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10" fill="#555">up to %s</text>`, pad+180+6*16+6, ly+10, units.Bytes(most))
	b.WriteString(`</svg>`)
	return b.String()
}

// heat is the colour of v on a log scale up to most: pale to deep blue.
func heat(v, most uint64) string {
	f := 1.0
	if most > 1 {
		f = math.Log1p(float64(v)) / math.Log1p(float64(most))
	}
	f = math.Min(math.Max(f, 0.08), 1)
	// from #9ecae1 to #08306b
	mix := func(a, b float64) int { return int(a + (b-a)*f) }
	return fmt.Sprintf("#%02x%02x%02x", mix(0x9e, 0x08), mix(0xca, 0x30), mix(0xe1, 0x6b))
}
