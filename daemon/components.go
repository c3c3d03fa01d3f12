package daemon

import (
	"errors"
	"log/slog"
)

// A component is one running part of the daemon. start starts it and
// returns what stops it (nil: nothing to stop).
type component struct {
	name  string
	start func() (stop func() error, err error)
}

// startAll starts cs in order, akvorado's StartStopComponents: the
// returned stop stops what started in reverse order, so a part stops only
// after every part started after it (which may use it) has stopped, and
// joins their errors. When a start fails, what already started is
// stopped and the error returned. Each step is logged at debug level,
// which shows where a shutdown hangs.
func startAll(log *slog.Logger, cs []component) (stop func() error, err error) {
	var started []component
	var stops []func() error
	stop = func() error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			log.Debug("stopping", "component", started[i].name)
			errs = append(errs, stops[i]())
		}
		return errors.Join(errs...)
	}
	for _, c := range cs {
		s, err := c.start()
		if err != nil {
			stop()
			return nil, err
		}
		log.Debug("started", "component", c.name)
		if s != nil {
			started, stops = append(started, c), append(stops, s)
		}
	}
	return stop, nil
}

// serving adapts a serve method that returns its stop.
func serving(serve func() (stop func())) func() (func() error, error) {
	return func() (func() error, error) { return quiet(serve()), nil }
}

// serveUntilStop runs serve (an HTTP server on a listener New bound) in
// the background. A serve error is logged as failed and does not stop the
// daemon: the listener is a side door, capture goes on without it. The
// returned stop calls closeServer and waits for serve to return, so that
// nothing answers once the stop returned.
func serveUntilStop(log *slog.Logger, failed string, serve func() error, closeServer func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := serve(); err != nil {
			log.Error(failed, "err", err)
		}
	}()
	return func() { closeServer(); <-done }
}

// quiet is a stop that cannot fail.
func quiet(stop func()) func() error {
	return func() error { stop(); return nil }
}
