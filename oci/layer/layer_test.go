package layer

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"
)

var epoch = time.Unix(1700000000, 0).UTC()

type ent struct {
	name, body, link string
	typ              byte
	mode             int64
	mtime            time.Time
	uid, gid         int
}

func mktar(t *testing.T, ents ...ent) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		mt := e.mtime
		if mt.IsZero() {
			mt = time.Now()
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, ModTime: mt, Linkname: e.link,
			Uid: e.uid, Gid: e.gid, Uname: "someone", Gname: "somegroup"}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if typ == tar.TypeChar {
			h.Devmajor, h.Devminor = 1, 3
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			io.WriteString(tw, e.body)
		}
	}
	tw.Close()
	return &b
}

// listing renders a layer tar readably: one line per entry.
func listing(t *testing.T, b []byte) string {
	t.Helper()
	var lines []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		l := fmt.Sprintf("%c %s %o %d:%d %d %s", h.Typeflag, h.Name, h.Mode, h.Uid, h.Gid, h.ModTime.Unix(), body)
		if h.Linkname != "" {
			l += " -> " + h.Linkname
		}
		if h.Uname != "" || h.Gname != "" {
			l += " NAMES:" + h.Uname + h.Gname
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

func read(t *testing.T, blobs string, b *bytes.Buffer) *Tree {
	t.Helper()
	tree, err := Read(b, blobs, Options{Epoch: epoch, Exclude: DefaultExclude})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func write(t *testing.T, tree, lower *Tree) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := tree.Write(&b, lower); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestNormalizeFullLayer(t *testing.T) {
	old := time.Unix(1600000000, 0)
	blobs := t.TempDir()
	tree := read(t, blobs, mktar(t,
		ent{name: "./", typ: tar.TypeDir, mode: 0o755},
		ent{name: "./usr/bin/", typ: tar.TypeDir, mode: 0o755, mtime: old},
		ent{name: "./usr/", typ: tar.TypeDir, mode: 0o755, mtime: old},
		ent{name: "./usr/bin/perl", body: "perl", mode: 0o755, mtime: old},
		ent{name: "./usr/bin/perl5.36", typ: tar.TypeLink, link: "./usr/bin/perl"},
		ent{name: "./bin", typ: tar.TypeSymlink, link: "usr/bin", mtime: old},
		ent{name: "./dev/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "./dev/null", typ: tar.TypeChar, mode: 0o666},
		ent{name: "./var/log/dpkg.log", body: "today"},
		ent{name: "./var/lib/apt/lists/partial/", typ: tar.TypeDir, mode: 0o700, uid: 42},
		ent{name: "./etc/shadow", body: "root:*:", mode: 0o640, gid: 42},
		ent{name: "./usr/bin/su", body: "su", mode: 0o4755, mtime: old},
	))
	got := listing(t, write(t, tree, nil))
	want := strings.Join([]string{
		"2 bin 777 0:0 1600000000  -> usr/bin",
		"5 dev/ 755 0:0 1700000000 ",
		"0 etc/shadow 640 0:42 1700000000 root:*:",
		"5 usr/ 755 0:0 1600000000 ",
		"5 usr/bin/ 755 0:0 1600000000 ",
		"0 usr/bin/perl 755 0:0 1600000000 perl",
		"1 usr/bin/perl5.36 755 0:0 1600000000  -> usr/bin/perl",
		"0 usr/bin/su 4755 0:0 1600000000 su",
	}, "\n")
	if got != want {
		t.Errorf("layer listing:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(got, "NAMES:") {
		t.Errorf("user or group names leaked into the layer:\n%s", got)
	}
}

func TestHardLinksWithinLayer(t *testing.T) {
	old := time.Unix(1600000000, 0)
	tree := read(t, t.TempDir(), mktar(t,
		ent{name: "b", body: "same", mode: 0o755, mtime: old},
		ent{name: "a", typ: tar.TypeLink, link: "b", mode: 0o755, mtime: old},
	))
	got := listing(t, write(t, tree, nil))
	want := "0 a 755 0:0 1600000000 same\n1 b 755 0:0 1600000000  -> a"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestDiffLayer(t *testing.T) {
	old := time.Unix(1600000000, 0)
	blobs := t.TempDir()
	base := []ent{
		{name: "etc/", typ: tar.TypeDir, mode: 0o755, mtime: old},
		{name: "etc/keep", body: "k", mtime: old},
		{name: "etc/change", body: "v1", mtime: old},
		{name: "etc/gone", body: "g", mtime: old},
		{name: "opt/", typ: tar.TypeDir, mode: 0o755, mtime: old},
		{name: "opt/tool/", typ: tar.TypeDir, mode: 0o755, mtime: old},
		{name: "opt/tool/a", body: "a", mtime: old},
		{name: "opt/tool/b", body: "b", mtime: old},
		{name: "srv/", typ: tar.TypeDir, mode: 0o755, mtime: old},
		{name: "srv/x", body: "x", mtime: old},
	}
	lower := read(t, blobs, mktar(t, base...))
	upper := read(t, blobs, mktar(t,
		ent{name: "etc/", typ: tar.TypeDir, mode: 0o755, mtime: old},
		ent{name: "etc/keep", body: "k", mtime: old},
		ent{name: "etc/change", body: "v2", mtime: old},
		ent{name: "etc/new", body: "n", mtime: old},
		ent{name: "opt/", typ: tar.TypeDir, mode: 0o755, mtime: old},
		ent{name: "srv", body: "now a file", mtime: old},
	))
	got := listing(t, write(t, upper, lower))
	want := strings.Join([]string{
		"0 etc/change 644 0:0 1600000000 v2",
		"0 etc/.wh.gone 644 0:0 1700000000 ",
		"0 etc/new 644 0:0 1600000000 n",
		"0 opt/.wh.tool 644 0:0 1700000000 ",
		"0 srv 644 0:0 1600000000 now a file",
	}, "\n")
	if got != want {
		t.Errorf("diff layer:\n%s\nwant:\n%s", got, want)
	}
	// Same tree on both sides: an empty layer.
	if got := listing(t, write(t, lower, lower)); got != "" {
		t.Errorf("diff of a tree with itself is not empty:\n%s", got)
	}
}

func TestApplyDiffYieldsUpper(t *testing.T) {
	blobs := t.TempDir()
	old := time.Unix(1600000000, 0)
	lowerEnts := []ent{
		{name: "a/", typ: tar.TypeDir, mode: 0o755, mtime: old},
		{name: "a/1", body: "1", mtime: old},
		{name: "a/2", body: "2", mtime: old},
		{name: "b", body: "b", mtime: old},
	}
	upperEnts := []ent{
		{name: "a/", typ: tar.TypeDir, mode: 0o700, mtime: old},
		{name: "a/1", body: "one", mtime: old},
		{name: "c", typ: tar.TypeSymlink, link: "a/1", mtime: old},
	}
	lower := read(t, blobs, mktar(t, lowerEnts...))
	upper := read(t, blobs, mktar(t, upperEnts...))
	full := write(t, lower, nil)
	diff := write(t, upper, lower)
	// Apply: a tiny overlay applier over listings.
	fs := map[string]string{}
	apply := func(b []byte) {
		tr := tar.NewReader(bytes.NewReader(b))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return
			}
			body, _ := io.ReadAll(tr)
			name := strings.TrimSuffix(h.Name, "/")
			if i := strings.LastIndex(name, ".wh."); i >= 0 {
				gone := name[:i] + name[i+4:]
				for k := range fs {
					if k == gone || strings.HasPrefix(k, gone+"/") {
						delete(fs, k)
					}
				}
				continue
			}
			fs[name] = fmt.Sprintf("%c %o %s%s", h.Typeflag, h.Mode, body, h.Linkname)
		}
	}
	apply(full)
	apply(diff)
	var got []string
	for k, v := range fs {
		got = append(got, k+" "+v)
	}
	sort.Strings(got)
	want := listing(t, write(t, upper, nil))
	var wantLines []string
	tr := tar.NewReader(strings.NewReader(string(write(t, upper, nil))))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		body, _ := io.ReadAll(tr)
		wantLines = append(wantLines, strings.TrimSuffix(h.Name, "/")+" "+fmt.Sprintf("%c %o %s%s", h.Typeflag, h.Mode, body, h.Linkname))
	}
	if strings.Join(got, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("lower+diff:\n%s\nwant (upper):\n%s\n(listing %s)", strings.Join(got, "\n"), strings.Join(wantLines, "\n"), want)
	}
}

func TestDeterministic(t *testing.T) {
	mk := func(order []int) []byte {
		ents := []ent{
			{name: "z", body: "z"}, {name: "a/", typ: tar.TypeDir, mode: 0o755}, {name: "a/b", body: "b"},
			{name: "m", typ: tar.TypeSymlink, link: "z"},
		}
		var shuffled []ent
		for _, i := range order {
			shuffled = append(shuffled, ents[i])
		}
		return write(t, read(t, t.TempDir(), mktar(t, shuffled...)), nil)
	}
	a := mk([]int{0, 1, 2, 3})
	time.Sleep(1100 * time.Millisecond) // later wall clock mtimes are clamped anyway
	b := mk([]int{3, 2, 1, 0})
	if !bytes.Equal(a, b) {
		t.Errorf("same content, different order or time: layers differ:\n%s\n---\n%s", listing(t, a), listing(t, b))
	}
}

func TestReadNeedsEpoch(t *testing.T) {
	_, err := Read(mktar(t), t.TempDir(), Options{})
	if err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
		t.Fatalf("want an error naming SOURCE_DATE_EPOCH, got %v", err)
	}
}
