package deb822

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParse(t *testing.T) {
	ps, err := Parse([]byte("# comment\nPackage: a\nDescription: one\n two\n\n\nPackage: b\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Get("package") != "a" || ps[0].Get("Description") != "one\n two" || ps[1].Get("Package") != "b" {
		t.Fatalf("%q", ps)
	}
	if got := ps[0].Without("description").String(); got != "Package: a\n" {
		t.Errorf("Without: %q", got)
	}
	for _, bad := range []string{" lead\n", "no colon\n", "A: 1\nA: 2\n", "Two words: x\n"} {
		if _, err := Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), "line ") {
			t.Errorf("Parse(%q) = %v, want an error naming the line", bad, err)
		}
	}
}

// TestReadSources: both formats, in apt's reading order, with options,
// Signed-By, disabled stanzas and ignored file names; a malformed file is
// an error naming it.
func TestReadSources(t *testing.T) {
	conf := fstest.MapFS{
		"sources.list": {Data: []byte("# old style\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main contrib\n" +
			"deb-src http://src.example/debian bookworm main # trailing comment\n")},
		"sources.list.d/b.sources": {Data: []byte("Types: deb deb-src\nURIs:\n http://two.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n" +
			"Enabled: no\nTypes: deb\nURIs: http://off.example\nSuites: bookworm\nComponents: main\n")},
		"sources.list.d/a.list":             {Data: []byte("deb http://three.example/flat ./\n")},
		"sources.list.d/c.sources.disabled": {Data: []byte("not even deb822")},
	}
	got, err := ReadSources(conf)
	if err != nil {
		t.Fatal(err)
	}
	want := []Source{
		{File: "sources.list", Types: []string{"deb"}, URIs: []string{"http://one.example/debian"}, Suites: []string{"bookworm"}, Components: []string{"main", "contrib"}, SignedBy: "/k.gpg", Enabled: true},
		{File: "sources.list", Types: []string{"deb-src"}, URIs: []string{"http://src.example/debian"}, Suites: []string{"bookworm"}, Components: []string{"main"}, Enabled: true},
		{File: "sources.list.d/a.list", Types: []string{"deb"}, URIs: []string{"http://three.example/flat"}, Suites: []string{"./"}, Components: []string{}, Enabled: true},
		{File: "sources.list.d/b.sources", Types: []string{"deb", "deb-src"}, URIs: []string{"http://two.example/debian/"}, Suites: []string{"bookworm", "bookworm-updates"}, Components: []string{"main"}, SignedBy: "/usr/share/keyrings/debian-archive-keyring.gpg", Enabled: true},
		{File: "sources.list.d/b.sources", Types: []string{"deb"}, URIs: []string{"http://off.example"}, Suites: []string{"bookworm"}, Components: []string{"main"}, Enabled: false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadSources:\n%+v\nwant\n%+v", got, want)
	}
	if got[4].Has("deb") || !got[3].Has("deb-src") {
		t.Error("Has ignores Enabled or Types")
	}
	if got, err := ReadSources(fstest.MapFS{}); err != nil || len(got) != 0 {
		t.Errorf("no configuration: %v %v", got, err)
	}
	for name, data := range map[string]string{"sources.list": "deb http://x.example\n", "sources.list.d/x.sources": "Types: deb\n bad\nA: 1\nA: 2\n", "sources.list.d/y.list": "rpm http://x bookworm\n"} {
		if _, err := ReadSources(fstest.MapFS{name: {Data: []byte(data)}}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s %q: %v, want an error naming the file", name, data, err)
		}
	}
}
