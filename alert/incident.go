package alert

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// Incident states.
const (
	Active   = "active"   // fired; waiting for its expiry
	Expiring = "expiring" // the expiry passed (or was asked for); undo actions run
	Closed   = "closed"   // history
)

// Action result states.
const (
	StatePending     = "pending"     // recorded, not started yet
	StateStarted     = "started"     // recorded as started; running now
	StateDone        = "done"        // finished and succeeded
	StateFailed      = "failed"      // finished and failed (exit status, timeout, HTTP error)
	StateInterrupted = "interrupted" // the daemon stopped while it ran: it may or may not have taken effect; never run again
)

// Dur is a duration that reads and writes as text ("1h0m0s") in JSON.
type Dur time.Duration

func (d Dur) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
func (d *Dur) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Dur(v)
	return err
}

// Step is one action as the incident fired it: templates expanded, so that
// the undo runs the same way even if the rules file changed meanwhile.
type Step struct {
	Kind    string   `json:"kind"` // exec, webhook or log
	Argv    []string `json:"argv,omitempty"`
	Undo    []string `json:"undo,omitempty"`
	URL     string   `json:"url,omitempty"`        // redacted (see RedactURL)
	URLHash string   `json:"url_sha256,omitempty"` // of the full URL, to find it in the rules
	Timeout Dur      `json:"timeout,omitempty"`
	Retries int      `json:"retries,omitempty"`
	Backoff Dur      `json:"backoff,omitempty"`
}

// Result is the record of one action run: written as pending when it is
// planned, as started before it runs, and with its outcome after.
type Result struct {
	Step     int        `json:"step"` // index into Plan
	Kind     string     `json:"kind"` // exec, undo, webhook or log
	State    string     `json:"state"`
	Argv     []string   `json:"argv,omitempty"`
	Started  *time.Time `json:"started,omitempty"`
	Ended    *time.Time `json:"ended,omitempty"`
	Exit     *int       `json:"exit,omitempty"`
	Output   string     `json:"output,omitempty"`
	Error    string     `json:"error,omitempty"`
	Attempts int        `json:"attempts,omitempty"` // webhook
	Status   int        `json:"http_status,omitempty"`
}

// Incident is one firing of a rule for one key, from firing to closing.
type Incident struct {
	ID         uint64     `json:"id"`
	Rule       string     `json:"rule"`
	Key        string     `json:"key"` // the remote, the prefix, or "host"
	Prefix     string     `json:"prefix,omitempty"`
	Country    string     `json:"country,omitempty"`
	ASN        uint32     `json:"asn,omitempty"`
	Metric     Metric     `json:"metric"`
	Threshold  float64    `json:"threshold"`
	Value      float64    `json:"value"` // in the window that fired
	Peak       float64    `json:"peak"`
	Window     time.Time  `json:"window"`      // start of the window that fired
	LastWindow time.Time  `json:"last_window"` // start of the latest window over the threshold
	Refires    int        `json:"refires"`     // windows over the threshold after firing
	OnRefire   string     `json:"on_refire"`
	Expire     Dur        `json:"expire"`
	Cooldown   Dur        `json:"cooldown,omitempty"`
	Started    time.Time  `json:"started"`
	Expires    time.Time  `json:"expires"`
	Ended      *time.Time `json:"ended,omitempty"`
	State      string     `json:"state"`
	Reason     string     `json:"reason,omitempty"` // why it ended
	Plan       []Step     `json:"plan"`
	Actions    []Result   `json:"actions"`        // at firing, in plan order
	Undo       []Result   `json:"undo,omitempty"` // at expiry, in reverse plan order
}

// Summary is an incident without its actions, as webhooks receive it.
type Summary struct {
	ID        uint64     `json:"id"`
	Rule      string     `json:"rule"`
	Key       string     `json:"key"`
	Prefix    string     `json:"prefix,omitempty"`
	Country   string     `json:"country,omitempty"`
	ASN       uint32     `json:"asn,omitempty"`
	Metric    Metric     `json:"metric"`
	Threshold float64    `json:"threshold"`
	Value     float64    `json:"value"`
	Peak      float64    `json:"peak"`
	Window    time.Time  `json:"window"`
	Refires   int        `json:"refires"`
	Started   time.Time  `json:"started"`
	Expires   time.Time  `json:"expires"`
	Ended     *time.Time `json:"ended,omitempty"`
	State     string     `json:"state"`
	Reason    string     `json:"reason,omitempty"`
}

func (inc *Incident) Summary() Summary {
	return Summary{ID: inc.ID, Rule: inc.Rule, Key: inc.Key, Prefix: inc.Prefix, Country: inc.Country, ASN: inc.ASN,
		Metric: inc.Metric, Threshold: inc.Threshold, Value: inc.Value, Peak: inc.Peak, Window: inc.Window,
		Refires: inc.Refires, Started: inc.Started, Expires: inc.Expires, Ended: inc.Ended, State: inc.State, Reason: inc.Reason}
}

func (inc *Incident) fields() Fields {
	return Fields{ID: inc.ID, Rule: inc.Rule, Remote: inc.Key, Prefix: inc.Prefix, Country: inc.Country, ASN: inc.ASN,
		Metric: inc.Metric, Value: inc.Value, Threshold: inc.Threshold, Window: inc.Window, Started: inc.Started}
}

// next is the next action to run: a pending firing action, else (once
// expiring) a pending undo action. nil when nothing is left to run.
func (inc *Incident) next() *Result {
	for i := range inc.Actions {
		if inc.Actions[i].State == StatePending {
			return &inc.Actions[i]
		}
	}
	if inc.State != Expiring {
		return nil
	}
	for i := range inc.Undo {
		if inc.Undo[i].State == StatePending {
			return &inc.Undo[i]
		}
	}
	return nil
}

// find returns the result in inc that r points at, by phase and index.
func (inc *Incident) find(undo bool, i int) *Result {
	if undo {
		return &inc.Undo[i]
	}
	return &inc.Actions[i]
}

func (inc *Incident) locate(r *Result) (undo bool, i int) {
	for i := range inc.Undo {
		if &inc.Undo[i] == r {
			return true, i
		}
	}
	for i := range inc.Actions {
		if &inc.Actions[i] == r {
			return false, i
		}
	}
	panic("alert: result not in incident")
}

func idKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

func activeKey(rule, key string) []byte { return []byte(rule + "\x00" + key) }

func decode(b []byte) (*Incident, error) {
	var inc Incident
	if err := json.Unmarshal(b, &inc); err != nil {
		return nil, fmt.Errorf("alerts: damaged incident record: %w", err)
	}
	return &inc, nil
}

func jsonMarshal(inc *Incident) ([]byte, error) { return json.Marshal(inc) }
