package xenboot

import (
	"encoding/base64"
	"strings"
	"time"
)

// Stage is how far a boot got: each is a milestone seen on the serial
// console, in this order.
type Stage int

const (
	StageStarted   Stage = iota // QEMU is running
	StageXen                    // the Xen banner appeared
	StageDom0                   // dom0 started xenstored and xenconsoled
	StageGuest                  // dom0 started the guest (xl create)
	StageGuestDone              // the guest is gone and xl returned
	StageVerdict                // dom0 wrote its verdict to the debug-exit port
)

var stageNames = [...]string{"qemu-started", "xen-banner", "dom0-ready", "guest-started", "guest-finished", "verdict"}

func (s Stage) String() string {
	if s >= 0 && int(s) < len(stageNames) {
		return stageNames[s]
	}
	return "stage?"
}

// waitingFor says what the boot waits for after reaching s.
func (s Stage) waitingFor() string {
	switch s {
	case StageStarted:
		return "Xen banner"
	case StageXen:
		return "dom0 ready"
	case StageDom0:
		return "guest start"
	case StageGuest:
		return "guest end"
	case StageGuestDone:
		return "dom0 verdict"
	}
	return "QEMU exit"
}

// fatalPatterns end a boot at once: a Xen or dom0 crash.
var fatalPatterns = []string{"Panic on CPU", "Hardware Dom0 crashed", "Kernel panic", "Out of memory"}

// monitor follows the serial console line by line; it is pure (no clock,
// no I/O) so that recorded logs can be replayed in tests.
type monitor struct {
	prefix  string // "XENBOOT-<nonce>: "
	stage   Stage
	reached [StageVerdict + 1]time.Duration

	fatal    string // the first fatal line
	shutdown string // how the guest shut down, as dom0's xl saw it
	xlExit   string
	xlLog    []string
	live     []string // lines relayed from the guest console while it ran
	inLog    bool
	logDone  bool
	b64      strings.Builder

	verdict, verdictReason string
	tail                   []string
}

const tailLines = 60

func newMonitor(nonce string) *monitor {
	return &monitor{prefix: "XENBOOT-" + nonce + ": "}
}

// line feeds one line (without \r\n) seen at elapsed time at; it reports
// whether a new stage was reached.
func (m *monitor) line(l string, at time.Duration) bool {
	m.tail = append(m.tail, l)
	if len(m.tail) > 2*tailLines {
		m.tail = append([]string(nil), m.tail[len(m.tail)-tailLines:]...)
	}
	if m.fatal == "" {
		for _, p := range fatalPatterns {
			if strings.Contains(l, p) {
				m.fatal = strings.TrimSpace(l)
			}
		}
	}
	before := m.stage
	if m.stage == StageStarted && strings.HasPrefix(l, "(XEN) Xen version ") {
		m.advance(StageXen, at)
	}
	i := strings.Index(l, m.prefix)
	if i < 0 {
		if m.stage == StageGuest && !strings.HasPrefix(l, "(XEN)") {
			m.live = append(m.live, l)
		}
		return m.stage != before
	}
	if i > 0 && m.stage == StageGuest {
		// Guest output without a final newline, then dom0's marker.
		m.live = append(m.live, l[:i])
	}
	msg := l[i+len(m.prefix):]
	switch {
	case msg == "dom0 ready":
		m.advance(StageDom0, at)
	case strings.HasPrefix(msg, "guest begin"):
		m.advance(StageGuest, at)
	case strings.HasPrefix(msg, "guest end rc="):
		m.xlExit = strings.TrimPrefix(msg, "guest end rc=")
		m.advance(StageGuestDone, at)
	case strings.HasPrefix(msg, "guest shutdown "):
		m.shutdown = strings.TrimPrefix(msg, "guest shutdown ")
	case strings.HasPrefix(msg, "xl: "):
		m.xlLog = append(m.xlLog, strings.TrimPrefix(msg, "xl: "))
	case msg == "guest log begin":
		m.inLog = true
	case msg == "guest log end":
		m.inLog, m.logDone = false, true
	case m.inLog && strings.HasPrefix(msg, "b64 "):
		m.b64.WriteString(strings.TrimSpace(strings.TrimPrefix(msg, "b64 ")))
	case strings.HasPrefix(msg, "verdict "):
		v, reason, _ := strings.Cut(strings.TrimPrefix(msg, "verdict "), " ")
		m.verdict, m.verdictReason = v, reason
		m.advance(StageVerdict, at)
	}
	return m.stage != before
}

// advance moves to stage s, filling in skipped milestones (a boot that
// shows dom0 ready has had a Xen banner, even if the log lost it).
func (m *monitor) advance(s Stage, at time.Duration) {
	for m.stage < s {
		m.stage++
		m.reached[m.stage] = at
	}
}

// guestOutput decodes the guest console log that xenconsoled wrote, with
// "\r\n" turned into "\n"; ok is false if the log section is missing or
// not valid base64.
func (m *monitor) guestOutput() (string, bool) {
	if !m.logDone {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(m.b64.String())
	if err != nil {
		return "", false
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n"), true
}

func (m *monitor) tailText(n int) string {
	t := m.tail
	if len(t) > n {
		t = t[len(t)-n:]
	}
	return strings.Join(t, "\n")
}
