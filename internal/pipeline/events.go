package pipeline

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Event is one line of dist/events.jsonl, for CI systems.
type Event struct {
	Time    string  `json:"time"`
	Type    string  `json:"type"`
	Stage   string  `json:"stage,omitempty"`
	Step    string  `json:"step,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
	Message string  `json:"message,omitempty"`
}

// EventLog writes events as JSON lines. A nil *EventLog discards events.
type EventLog struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

// NewEventLog writes events to w.
func NewEventLog(w io.Writer) *EventLog { return &EventLog{w: w, now: time.Now} }

// Emit writes one event, stamped with the wall clock (events describe the
// run, not the release, so they are not clamped to the epoch).
func (e *EventLog) Emit(ev Event) {
	if e == nil || e.w == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ev.Time = e.now().UTC().Format(time.RFC3339Nano)
	b, _ := json.Marshal(ev)
	_, _ = e.w.Write(append(b, '\n'))
}
