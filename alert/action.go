package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Fields are what templates in exec and undo arguments may use, written
// {name}; {{ and }} stand for literal braces.
type Fields struct {
	ID        uint64
	Rule      string
	Remote    string // the key: an address, a prefix, or "host"
	Prefix    string // CIDR: the address as /32 or /128, the prefix, or "" for host rules
	Country   string
	ASN       uint32
	Metric    Metric
	Value     float64
	Threshold float64
	Window    time.Time // start of the window that fired
	Started   time.Time
}

var templateNames = []string{"id", "rule", "remote", "prefix", "country", "asn", "metric", "value", "rate", "threshold", "window", "started"}

func (f Fields) get(name string) (string, bool) {
	switch name {
	case "id":
		return strconv.FormatUint(f.ID, 10), true
	case "rule":
		return f.Rule, true
	case "remote":
		return f.Remote, true
	case "prefix":
		return f.Prefix, true
	case "country":
		return f.Country, true
	case "asn":
		return strconv.FormatUint(uint64(f.ASN), 10), true
	case "metric":
		return string(f.Metric), true
	case "value":
		return plain(f.Value), true
	case "rate":
		return FormatValue(f.Metric, f.Value), true
	case "threshold":
		return plain(f.Threshold), true
	case "window":
		return f.Window.UTC().Format(time.RFC3339), true
	case "started":
		return f.Started.UTC().Format(time.RFC3339), true
	}
	return "", false
}

// expand fills in s's {fields}. Unknown names and unbalanced braces are
// errors, found when the rules are loaded.
func expand(s string, f Fields) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			b.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			b.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("%q: unclosed { (write {{ for a literal brace)", s)
			}
			name := s[i+1 : i+end]
			v, ok := f.get(name)
			if !ok {
				return "", fmt.Errorf("%q: unknown field {%s} (want one of %s)", s, name, strings.Join(templateNames, ", "))
			}
			b.WriteString(v)
			i += end
		case c == '}':
			return "", fmt.Errorf("%q: } without { (write }} for a literal brace)", s)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func expandAll(argv []string, f Fields) []string {
	out := make([]string, len(argv))
	for i, s := range argv {
		out[i], _ = expand(s, f) // validated when loaded
	}
	return out
}

// FormatValue shows a metric's value with its unit: 52.4 Mbit/s, 1.2 Kpkt/s, 3.1 GB.
func FormatValue(m Metric, v float64) string {
	unit := map[Metric]string{TxBps: "bit/s", RxBps: "bit/s", Bps: "bit/s", TxPps: "pkt/s", RxPps: "pkt/s", Pps: "pkt/s"}[m]
	if unit == "" {
		unit = "B"
	}
	for _, p := range []struct {
		s string
		m float64
	}{{"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"k", 1e3}} {
		if v >= p.m {
			return strconv.FormatFloat(v/p.m, 'f', 1, 64) + p.s + unit
		}
	}
	return small(v) + unit
}

// small shows a value under 1000 with three significant digits and no
// trailing zeros: 999, 61.2, 3.5, 0.1, 0.0125. Thresholds of a fraction of
// a packet per second are common; rounding them to "0" misreads them.
func small(v float64) string {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	digits := max(2-int(math.Floor(math.Log10(v))), 0)
	s := strconv.FormatFloat(v, 'f', digits, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// plain is a template's plain number: whole from 1 up, as it always was,
// and with three significant digits below 1, where a whole number says 0.
func plain(v float64) string {
	if v >= 1 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return small(v)
}

// maxOutput bounds the output kept from a command.
const maxOutput = 4096

// capped keeps the first maxOutput bytes written and counts the rest.
type capped struct {
	b    bytes.Buffer
	lost int
}

func (c *capped) Write(p []byte) (int, error) {
	room := maxOutput - c.b.Len()
	if room >= len(p) {
		c.b.Write(p)
	} else {
		c.b.Write(p[:max(room, 0)])
		c.lost += len(p) - max(room, 0)
	}
	return len(p), nil
}

func (c *capped) String() string {
	if c.lost > 0 {
		return c.b.String() + fmt.Sprintf("\n[%d more bytes not kept]", c.lost)
	}
	return c.b.String()
}

// runExec runs argv without a shell, in a process group of its own so that
// a timeout kills whatever it started, and fills in res.
func runExec(ctx context.Context, argv []string, timeout time.Duration, env []string, res *Result) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out capped
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second // a grandchild holding the pipe must not hang us
	err := cmd.Run()
	res.Output = out.String()
	if cmd.ProcessState != nil {
		code := cmd.ProcessState.ExitCode()
		res.Exit = &code
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.State, res.Error = StateFailed, fmt.Sprintf("timed out after %v; killed", timeout)
	case err != nil:
		res.State, res.Error = StateFailed, err.Error()
	default:
		res.State = StateDone
	}
}

// WebhookBody is what a webhook receives, as JSON.
type WebhookBody struct {
	Event    string  `json:"event"` // fired or expired
	Incident Summary `json:"incident"`
}

// postWebhook posts body to url, retrying on network errors, 5xx, 408 and
// 429 with a backoff that doubles from backoff up to a minute. Other 4xx
// answers are final.
func postWebhook(ctx context.Context, hc *http.Client, url string, body []byte, timeout time.Duration, retries int, backoff time.Duration, res *Result) {
	pause := backoff
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				res.State, res.Error = StateFailed, fmt.Sprintf("%s; stopped retrying: %v", res.Error, ctx.Err())
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, maxBackoff)
		}
		res.Attempts = attempt + 1
		status, err := postOnce(ctx, hc, url, body, timeout)
		res.Status = status
		switch {
		case err == nil && status >= 200 && status < 300:
			res.State, res.Error = StateDone, ""
			return
		case err != nil:
			res.Error = err.Error()
		default:
			res.Error = fmt.Sprintf("HTTP %d", status)
			if status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests {
				res.State = StateFailed
				return
			}
		}
	}
	res.State = StateFailed
}

func postOnce(ctx context.Context, hc *http.Client, url string, body []byte, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, redactErr(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "dstwatch-alert")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, redactErr(err) // the URL may hold a secret
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

func webhookBody(event string, inc *Incident) []byte {
	b, _ := json.Marshal(WebhookBody{Event: event, Incident: inc.Summary()})
	return b
}
