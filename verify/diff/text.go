package diff

import (
	"fmt"
	"strings"
)

const (
	maxText      = 16 << 20 // larger text files are compared as bytes
	maxLCSCells  = 4 << 20  // beyond this the changed middle is shown as one block
	contextLines = 3
)

// compareText lists unified-style hunks (3 lines of context), one
// difference per hunk, each bounded to MaxHunkLines lines.
func compareText(d *differ, where []string, a, b *blob) error {
	if a.size > maxText || b.size > maxText {
		return nil // the bytes comparison reports it
	}
	da, err := a.bytes(maxText)
	if err != nil {
		return err
	}
	db, err := b.bytes(maxText)
	if err != nil {
		return err
	}
	la, lb := splitLines(string(da)), splitLines(string(db))
	ops := lineDiff(la, lb)
	for _, h := range hunks(ops, contextLines) {
		var body []string
		for i, o := range h.ops {
			if i == d.o.MaxHunkLines {
				body = append(body, fmt.Sprintf("... %d more lines in this hunk", len(h.ops)-i))
				break
			}
			body = append(body, string(o.kind)+showLine(o.text))
		}
		d.addDiff(Difference{Where: where, Field: "lines -" + span(h.startA, h.lenA) + " +" + span(h.startB, h.lenB),
			Text: strings.Join(body, "\n")})
	}
	return nil
}

// span is a unified-diff range: "start" for one line, else "start,len".
func span(start, n int) string {
	if n == 1 {
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}

// splitLines keeps each line's "\n" so that a missing final newline is a
// difference.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func showLine(l string) string {
	if strings.HasSuffix(l, "\n") {
		l = strings.TrimSuffix(l, "\n")
	} else {
		l += "  (no newline at end of file)"
	}
	if len(l) > 300 {
		l = l[:297] + "..."
	}
	return l
}

type lineOp struct {
	kind byte // ' ', '-', '+'
	text string
}

// lineDiff returns an edit script from a to b: a longest common
// subsequence on the part between the common prefix and suffix, or, when
// that part is too large, all of it removed and added.
func lineDiff(a, b []string) []lineOp {
	p := 0
	for p < len(a) && p < len(b) && a[p] == b[p] {
		p++
	}
	s := 0
	for s < len(a)-p && s < len(b)-p && a[len(a)-1-s] == b[len(b)-1-s] {
		s++
	}
	var ops []lineOp
	for _, l := range a[:p] {
		ops = append(ops, lineOp{' ', l})
	}
	ma, mb := a[p:len(a)-s], b[p:len(b)-s]
	n, m := len(ma), len(mb)
	if n*m <= maxLCSCells {
		// lcs[i][j] is the LCS length of ma[i:] and mb[j:].
		w := m + 1
		lcs := make([]int32, (n+1)*w)
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if ma[i] == mb[j] {
					lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
				} else {
					lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n && j < m {
			switch {
			case ma[i] == mb[j]:
				ops = append(ops, lineOp{' ', ma[i]})
				i++
				j++
			case lcs[(i+1)*w+j] >= lcs[i*w+j+1]:
				ops = append(ops, lineOp{'-', ma[i]})
				i++
			default:
				ops = append(ops, lineOp{'+', mb[j]})
				j++
			}
		}
		for ; i < n; i++ {
			ops = append(ops, lineOp{'-', ma[i]})
		}
		for ; j < m; j++ {
			ops = append(ops, lineOp{'+', mb[j]})
		}
	} else {
		for _, l := range ma {
			ops = append(ops, lineOp{'-', l})
		}
		for _, l := range mb {
			ops = append(ops, lineOp{'+', l})
		}
	}
	for _, l := range a[len(a)-s:] {
		ops = append(ops, lineOp{' ', l})
	}
	return ops
}

type hunk struct {
	startA, lenA, startB, lenB int
	ops                        []lineOp
}

// hunks groups changes with ctx lines of context; changes closer than
// 2*ctx lines share a hunk.
func hunks(ops []lineOp, ctx int) []hunk {
	// posA[i], posB[i]: 1-based line numbers in a and b where ops[i] is.
	posA, posB := make([]int, len(ops)+1), make([]int, len(ops)+1)
	posA[0], posB[0] = 1, 1
	for i, o := range ops {
		posA[i+1], posB[i+1] = posA[i], posB[i]
		if o.kind != '+' {
			posA[i+1]++
		}
		if o.kind != '-' {
			posB[i+1]++
		}
	}
	var out []hunk
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(0, i-ctx)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			k := end
			for k < len(ops) && ops[k].kind == ' ' {
				k++
			}
			if k < len(ops) && k-end <= 2*ctx {
				end = k // the next change is close: same hunk
				continue
			}
			end = min(end+ctx, len(ops))
			break
		}
		h := hunk{ops: ops[start:end], startA: posA[start], startB: posB[start],
			lenA: posA[end] - posA[start], lenB: posB[end] - posB[start]}
		if h.lenA == 0 {
			h.startA--
		}
		if h.lenB == 0 {
			h.startB--
		}
		out = append(out, h)
		i = end
	}
	return out
}
