package serve

import (
	"context"
	"testing"
	"time"
)

// TestBatchContext checks that a batch's search is cancelled once, and only once, every request
// of the batch has ended: a cluster then stops asking for answers nobody waits for.
func TestBatchContext(t *testing.T) {
	a, cancelA := context.WithCancel(context.Background())
	b, cancelB := context.WithTimeout(context.Background(), time.Hour)
	ctx, release := batchContext([]*job{{ctx: a}, {ctx: b}})
	defer release()
	cancelA()
	select {
	case <-ctx.Done():
		t.Fatal("the batch's context ended while a request still waits")
	case <-time.After(50 * time.Millisecond):
	}
	cancelB()
	select {
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the batch's context did not end after every request ended")
	}

	// Released after the search, it ends too, and stops watching the requests.
	c, cancelC := context.WithCancel(context.Background())
	defer cancelC()
	ctx2, release2 := batchContext([]*job{{ctx: c}})
	release2()
	if ctx2.Err() == nil {
		t.Error("a released batch context has not ended")
	}
}
