package alert

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// The job runner: each incident's actions run in a goroutine of their
// own, one job per incident at a time, at most limits.running at once
// (slots, limits.go), each action recorded as started before it runs and
// with its outcome after (see the package comment on delivery).

func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// schedule runs advance for the incident after its previous job.
func (e *Engine) schedule(id uint64) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	prev := e.jobs[id]
	done := make(chan struct{})
	e.jobs[id] = done
	e.jobsWG.Add(1)
	go func() {
		defer e.jobsWG.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		if !e.slots.acquire(e.limits().Running, e.stop) {
			return // stopping: what is pending stays pending
		}
		e.advance(id)
		e.slots.release()
		e.mu.Lock()
		if e.jobs[id] == done {
			delete(e.jobs, id)
		}
		e.mu.Unlock()
	}()
	return done
}

// Wait waits until no action runs or waits to run (tests).
func (e *Engine) Wait() { e.jobsWG.Wait() }

func (e *Engine) stopping() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

// advance runs the incident's pending actions in order, each recorded as
// started before and with its outcome after, and closes an expiring
// incident once its undo actions are through.
func (e *Engine) advance(id uint64) {
	for {
		if e.stopping() || (e.beforeStart != nil && !e.beforeStart(id)) {
			return // what is pending stays pending: the next start runs it
		}
		var undo bool
		var idx int
		var started bool
		inc, err := e.update(id, func(inc *Incident) error {
			r := inc.next()
			if r == nil {
				return nil
			}
			undo, idx = inc.locate(r)
			now := e.now()
			r.State, r.Started, started = StateStarted, &now, true
			return nil
		})
		if err != nil {
			e.log.Error("alerts: record action start", "incident", id, "err", err)
			return
		}
		if !started {
			if inc.State == Expiring {
				e.finish(id)
			}
			return
		}
		r := inc.find(undo, idx)
		if e.beforeRun != nil && !e.beforeRun(inc, r) {
			return
		}
		e.run(inc, undo, r)
		if e.ctx.Err() != nil && r.State != StateDone {
			r.State = StateInterrupted
			r.Error = "stopped by the daemon's shutdown: " + r.Error
		}
		now := e.now()
		r.Ended = &now
		res := *r
		if _, err := e.update(id, func(inc *Incident) error {
			*inc.find(undo, idx) = res
			return nil
		}); err != nil {
			e.log.Error("alerts: record action result", "incident", id, "err", err)
			return
		}
		lvl := slog.LevelInfo
		if res.State != StateDone {
			lvl = slog.LevelError
		}
		e.log.Log(context.Background(), lvl, "alerts: action "+res.State, "incident", id, "rule", inc.Rule, "key", inc.Key,
			"kind", res.Kind, "argv", res.Argv, "exit", exitValue(res.Exit), "http_status", res.Status, "attempts", res.Attempts, "err", res.Error)
	}
}

// run runs one action, filling in r.
func (e *Engine) run(inc *Incident, undo bool, r *Result) {
	step := inc.Plan[r.Step]
	event, env := "fired", "fire"
	if undo {
		event, env = "expired", "expire"
	}
	envv := []string{"DSTWATCH_INCIDENT=" + strconv.FormatUint(inc.ID, 10), "DSTWATCH_EVENT=" + env, "DSTWATCH_RULE=" + inc.Rule}
	switch r.Kind {
	case KindExec, KindUndo:
		runExec(e.ctx, r.Argv, time.Duration(step.Timeout), envv, r)
	case KindWebhook:
		u, err := e.webhookURL(step)
		if err != nil {
			r.State, r.Error = StateFailed, err.Error()
			return
		}
		postWebhook(e.ctx, e.hc, u, webhookBody(event, inc), time.Duration(step.Timeout), step.Retries, time.Duration(step.Backoff), r)
	case KindLog:
		now := e.now()
		line := fmt.Sprintf("!!! alert %s rule=%s id=%d key=%s %s %s > %s", event, inc.Rule, inc.ID, inc.Key,
			inc.Metric, FormatValue(inc.Metric, inc.Peak), FormatValue(inc.Metric, inc.Threshold))
		if undo {
			line += " reason=" + strconv.Quote(inc.Reason)
		} else {
			line += " expires=" + inc.Expires.UTC().Format(time.RFC3339)
		}
		if e.record != nil {
			e.record(now, line)
		}
		e.log.Warn("alert "+event, "rule", inc.Rule, "id", inc.ID, "key", inc.Key, "metric", inc.Metric, "value", inc.Peak, "threshold", inc.Threshold)
		r.State = StateDone
	default:
		r.State, r.Error = StateFailed, "unknown action kind "+r.Kind
	}
}

// exitValue is an action's exit status for the log: the number, or nothing
// when the action was not a command or never exited.
func exitValue(code *int) any {
	if code == nil {
		return nil
	}
	return *code
}
