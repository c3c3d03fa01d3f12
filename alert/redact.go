package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Webhook URLs often carry a secret in their path or query (Slack, Teams
// and most chat services put the token there). The engine keeps only a
// redacted form and a SHA-256 of the URL in alerts.db, in its log and in
// what the API answers; when a webhook runs, the full URL comes from the
// rules in use, found by that hash.

// redactedPath stands for the path, query and fragment of a redacted URL.
const redactedPath = "/[redacted]"

// RedactURL keeps a URL's scheme and host and hides the rest (user info,
// path, query, fragment): https://hooks.example.net/[redacted].
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "[redacted URL]"
	}
	out := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		out += redactedPath
	}
	return out
}

func urlHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// redactErr hides the URL in an HTTP client error ("Post \"https://...\": ...").
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: RedactURL(ue.URL), Err: ue.Err}
	}
	return err
}

// webhookURL is the full URL of a planned webhook step: the rules' URL
// with the step's hash. Records written before URLs were redacted hold
// the full URL itself.
func (e *Engine) webhookURL(s Step) (string, error) {
	if s.URLHash == "" || urlHash(s.URL) == s.URLHash {
		return s.URL, nil // an old record, or a URL with nothing to hide
	}
	for _, r := range e.rules.Load().Rules {
		for _, a := range r.Actions {
			if a.Kind == KindWebhook && urlHash(a.URL) == s.URLHash {
				return a.URL, nil
			}
		}
	}
	return "", errors.New("no rule in the rules in use has this webhook URL any more (alerts.db keeps only its redacted form): not posted")
}

// redactStored rewrites incidents recorded before URLs were redacted, so
// that their webhook URLs leave alerts.db (bbolt may keep the old bytes in
// free pages until it reuses them).
func redactStored(tx *bolt.Tx) error {
	b := tx.Bucket(bucketIncidents)
	var old []*Incident
	err := b.ForEach(func(_, v []byte) error {
		inc, err := decode(v)
		if err != nil {
			return nil // reported where it is read
		}
		for _, s := range inc.Plan {
			if s.Kind == KindWebhook && s.URLHash == "" && s.URL != "" {
				old = append(old, inc)
				break
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, inc := range old {
		for i := range inc.Plan {
			if s := &inc.Plan[i]; s.Kind == KindWebhook && s.URLHash == "" && s.URL != "" {
				s.URLHash = urlHash(s.URL)
			}
		}
		if err := put(tx, inc.redacted()); err != nil {
			return err
		}
	}
	return nil
}

// redacted is inc as it is shown: webhook URLs redacted, also inside the
// errors of records written before URLs were redacted.
func (inc *Incident) redacted() *Incident {
	for i := range inc.Plan {
		s := &inc.Plan[i]
		if s.Kind != KindWebhook || s.URL == "" || s.URL == RedactURL(s.URL) {
			continue
		}
		full, red := s.URL, RedactURL(s.URL)
		s.URL = red
		for _, list := range [][]Result{inc.Actions, inc.Undo} {
			for j := range list {
				list[j].Error = strings.ReplaceAll(list[j].Error, full, red)
			}
		}
	}
	return inc
}
