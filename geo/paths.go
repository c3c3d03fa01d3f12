package geo

import (
	"os"
	"path/filepath"
)

// defaultDirs are where geoipupdate and distribution packages put databases,
// most likely to be kept current first: geoipupdate's default, distro
// packages, then local and Homebrew installs.
var defaultDirs = []string{
	"/var/lib/GeoIP",
	"/usr/share/GeoIP",
	"/usr/local/share/GeoIP",
	"/usr/local/var/GeoIP",
	"/opt/homebrew/var/GeoIP",
}

// countryNames and asnNames are the usual file names, preferred first:
// Country files are smaller and faster than City files carrying the same
// countries.
var (
	countryNames = []string{
		"GeoLite2-Country.mmdb",
		"GeoIP2-Country.mmdb",
		"GeoLite2-City.mmdb",
		"GeoIP2-City.mmdb",
		"dbip-country-lite.mmdb",
		"ipinfo_lite.mmdb",
	}
	asnNames = []string{
		"GeoLite2-ASN.mmdb",
		"GeoIP2-ISP.mmdb",
		"dbip-asn-lite.mmdb",
	}
)

// DefaultPaths returns the databases found in the usual locations: at most
// one country file and one ASN file (country first), each the first that
// exists when searching directory by directory, and within a directory name
// by name in the order listed above. Directories come first so that a file
// geoipupdate keeps current in /var/lib/GeoIP beats an old distro copy in
// /usr/share/GeoIP. It returns nil when nothing is found.
func DefaultPaths() []string {
	return findPaths(defaultDirs)
}

func findPaths(dirs []string) []string {
	var out []string
	for _, names := range [][]string{countryNames, asnNames} {
		if p := firstExisting(dirs, names); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func firstExisting(dirs, names []string) string {
	for _, dir := range dirs {
		for _, name := range names {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p
			}
		}
	}
	return ""
}
