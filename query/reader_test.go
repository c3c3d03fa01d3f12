package query

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/dstwatch/dstwatch/storage"
)

// A question whose context is done is not answered: the error is the
// context's, for a range, a period grouping (one span per period) and the
// last N windows, so that the API stops adding up for a client that went.
func TestAnswerHeedsContext(t *testing.T) {
	ws := monthWindows()
	db, err := storage.Open(filepath.Join(t.TempDir(), "month.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Put(ws); err != nil {
		t.Fatal(err)
	}
	month := Range{From: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		r Range
		q Question
	}{
		{month, Question{By: ByRemote}},
		{month, Question{By: ByDay, Loc: time.UTC}},
		{Range{Last: 100}, Question{By: ByCountry}},
	} {
		if rows, _, err := Answer(context.Background(), db, c.r, c.q); err != nil || len(rows) == 0 {
			t.Fatalf("%+v: %d rows, %v", c, len(rows), err)
		}
		if _, _, err := Answer(ctx, db, c.r, c.q); !errors.Is(err, context.Canceled) {
			t.Errorf("%v %+v with a done context: %v", c.q.By, c.r, err)
		}
		if _, _, err := AnswerServices(ctx, db, c.r, ServiceQuestion{}); !errors.Is(err, context.Canceled) {
			t.Errorf("services %+v with a done context: %v", c.r, err)
		}
	}
}
