package diff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// maxJSON bounds the JSON documents parsed (SBOMs are a few MB).
const maxJSON = 64 << 20

// compareJSON lists the key paths whose values differ, in sorted key
// order. Arrays of objects that all carry a unique identity (SPDXID,
// bom-ref, path, name, digest) are matched by it, so an inserted element
// shows as one element only on one side rather than as every later index.
func compareJSON(d *differ, where []string, a, b *blob) error {
	va, err := parseJSON(a)
	if err != nil {
		return fmt.Errorf("parsing JSON A: %w", err)
	}
	vb, err := parseJSON(b)
	if err != nil {
		return fmt.Errorf("parsing JSON B: %w", err)
	}
	before := d.total
	d.jsonValue(where, "$", va, vb)
	if d.total == before {
		d.addDiff(Difference{Where: where, Field: "encoding",
			Text: "the same JSON value, encoded differently (key order, white space, escaping or number format)"})
	}
	return nil
}

func parseJSON(b *blob) (any, error) {
	data, err := b.bytes(maxJSON)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

var identityKeys = []string{"SPDXID", "bom-ref", "path", "name", "digest"}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func jsonKey(path, k string) string {
	if plainKey.MatchString(k) {
		return path + "." + k
	}
	return path + "[" + strconv.Quote(k) + "]"
}

func (d *differ) jsonValue(where []string, path string, a, b any) {
	switch va := a.(type) {
	case map[string]any:
		vb, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(va)+len(vb))
		for k := range va {
			keys = append(keys, k)
		}
		for k := range vb {
			if _, ok := va[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			xa, okA := va[k]
			xb, okB := vb[k]
			p := jsonKey(path, k)
			switch {
			case !okA:
				d.add(where, p, "(absent)", compact(xb))
			case !okB:
				d.add(where, p, compact(xa), "(absent)")
			default:
				d.jsonValue(where, p, xa, xb)
			}
		}
		return
	case []any:
		vb, ok := b.([]any)
		if !ok {
			break
		}
		if key := identityKey(va, vb); key != "" {
			d.jsonByIdentity(where, path, key, va, vb)
			return
		}
		if len(va) != len(vb) {
			d.add(where, path+" length", strconv.Itoa(len(va)), strconv.Itoa(len(vb)))
		}
		for i := 0; i < max(len(va), len(vb)); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= len(va):
				d.add(where, p, "(absent)", compact(vb[i]))
			case i >= len(vb):
				d.add(where, p, compact(va[i]), "(absent)")
			default:
				d.jsonValue(where, p, va[i], vb[i])
			}
		}
		return
	}
	if !jsonEqual(a, b) {
		d.add(where, path, compact(a), compact(b))
	}
}

func (d *differ) jsonByIdentity(where []string, path, key string, a, b []any) {
	id := func(v any) string { return v.(map[string]any)[key].(string) }
	ma, mb := map[string]any{}, map[string]any{}
	var orderA, orderB []string
	for _, v := range a {
		ma[id(v)] = v
		orderA = append(orderA, id(v))
	}
	for _, v := range b {
		mb[id(v)] = v
		orderB = append(orderB, id(v))
	}
	ids := append([]string{}, orderA...)
	for _, k := range orderB {
		if _, ok := ma[k]; !ok {
			ids = append(ids, k)
		}
	}
	sort.Strings(ids)
	if len(ma) == len(mb) && len(ids) == len(ma) {
		for i := range orderA {
			if orderA[i] != orderB[i] {
				d.add(where, path+" order", fmt.Sprintf("[%d] is %s=%s", i, key, orderA[i]), fmt.Sprintf("[%d] is %s=%s", i, key, orderB[i]))
				break
			}
		}
	}
	for _, k := range ids {
		p := fmt.Sprintf("%s[%s=%s]", path, key, k)
		xa, okA := ma[k]
		xb, okB := mb[k]
		switch {
		case !okA:
			d.add(where, p, "(absent)", compact(xb))
		case !okB:
			d.add(where, p, compact(xa), "(absent)")
		default:
			d.jsonValue(where, p, xa, xb)
		}
	}
}

// identityKey returns a key that every element of both arrays (objects
// all) has as a string unique within its array, or "".
func identityKey(a, b []any) string {
	if len(a) == 0 || len(b) == 0 {
		return ""
	}
	for _, key := range identityKeys {
		ok := true
		for _, arr := range [][]any{a, b} {
			seen := map[string]bool{}
			for _, v := range arr {
				m, isObj := v.(map[string]any)
				if !isObj {
					return ""
				}
				s, isStr := m[key].(string)
				if !isStr || seen[s] {
					ok = false
					break
				}
				seen[s] = true
			}
			if !ok {
				break
			}
		}
		if ok {
			return key
		}
	}
	return ""
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// compact renders a value on one line, bounded.
func compact(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	s := strings.TrimSpace(buf.String())
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}
