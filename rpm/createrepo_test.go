package rpm

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	rpmutils "github.com/sassoftware/go-rpmutils"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/internal/testenv"
)

// crSpec is an rpmbuild package with what nfpm cannot express: an epoch,
// Requires(pre/post/preun/postun), rpmlib() and libc.so.6 requires,
// requires on own files (primary and not), a require equal to a provide,
// duplicated requires, all four weak dependency kinds, ghost and %dir
// entries, and twelve changelog entries with repeated dates (createrepo_c
// keeps ten and makes equal dates distinct).
const crSpec = `Name: halvm-crtest
Epoch: 3
Version: 1.0
Release: 2
Summary: createrepo_c comparison package & <friends>
License: BSD-3-Clause
URL: https://halvm.invalid/crtest
Group: Development/Tools
Vendor: HaLVM
Packager: HaLVM release team <release@halvm.invalid>
BuildArch: noarch
Requires(pre): /usr/sbin/useradd
Requires(post): coreutils
Requires(preun): halvm-dummy-preun
Requires(postun): halvm-dummy-postun
Requires: libc.so.6(GLIBC_2.2.5)(64bit)
Requires: libc.so.6(GLIBC_2.34)(64bit)
Requires: libc.so.6()(64bit)
Requires: /etc/halvm-crtest.conf
Requires: /usr/share/halvm-crtest/data
Requires: halvm-crtest-virtual = 1.0
Requires: halvm >= 1:2.4-1
Requires: halvm >= 1:2.4-1
Requires: foo < 2.0
Provides: halvm-crtest-virtual = 1.0
Provides: halvm-crtest-other
Conflicts: bar > 1
Obsoletes: baz <= 0.9
Recommends: rec1
Suggests: sug1 >= 1
Supplements: sup1
Enhances: enh1

%description
First line with & < > " '.
	A tab, and trailing spaces   

%install
mkdir -p %{buildroot}/etc %{buildroot}/usr/share/halvm-crtest %{buildroot}/usr/bin %{buildroot}/usr/lib
echo conf > %{buildroot}/etc/halvm-crtest.conf
echo data > %{buildroot}/usr/share/halvm-crtest/data
printf 'echo hi\n' > %{buildroot}/usr/bin/halvm-crtest
chmod 0755 %{buildroot}/usr/bin/halvm-crtest
echo mail > %{buildroot}/usr/lib/sendmail

%pre
true

%files
%config(noreplace) /etc/halvm-crtest.conf
%dir /usr/share/halvm-crtest
/usr/share/halvm-crtest/data
/usr/bin/halvm-crtest
/usr/lib/sendmail
%ghost /var/log/halvm-crtest.log

%changelog
* Tue Nov 14 2023 Release Team <release@halvm.invalid>   - 3:1.0-2
- twelfth
* Tue Nov 14 2023 Release Team <release@halvm.invalid> - 3:1.0-1
- eleventh
* Tue Nov 14 2023 Release Team <release@halvm.invalid> - 3:0.11-1
- tenth
* Mon Nov 13 2023 Release Team <release@halvm.invalid> - 3:0.10-1
- ninth
* Sun Nov 12 2023 Release Team <release@halvm.invalid> - 3:0.9-1
- eighth, with <markup> & "quotes"
* Sun Nov 12 2023 Release Team <release@halvm.invalid> - 3:0.8-1
- seventh
* Fri Nov 10 2023 Release Team <release@halvm.invalid> - 3:0.7-1
- sixth
  multi-line
* Thu Nov 09 2023 Release Team <release@halvm.invalid> - 3:0.6-1
- fifth
* Wed Nov 08 2023 Release Team <release@halvm.invalid> - 3:0.5-1
- fourth
* Tue Nov 07 2023 Release Team <release@halvm.invalid> - 3:0.4-1
- third
* Mon Nov 06 2023 Release Team <release@halvm.invalid> - 3:0.3-1
- second
* Sun Nov 05 2023 Release Team <release@halvm.invalid> - 3:0.2-1
- first
`

// buildWithRPMBuild builds crSpec with rpmbuild and signs it with key
// (an rpm header signature and a header+payload signature, as rpmsign
// makes them), returning the signed package's path in dir.
func buildWithRPMBuild(ctx context.Context, t *testing.T, dir string, key *pgp.Key) string {
	t.Helper()
	top := t.TempDir()
	spec := filepath.Join(top, "crtest.spec")
	if err := os.WriteFile(spec, []byte(crSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"rpmbuild", "-bb", "--nodeps",
		"--define", "_topdir " + top,
		"--define", "_tmppath " + top + "/tmp",
		"--define", "_buildhost build.halvm.invalid",
		"--define", "use_source_date_epoch_as_buildtime 1",
		"--define", "clamp_mtime_to_source_date_epoch 1",
		spec}
	env := run.BaseEnv("HOME="+top, "SOURCE_DATE_EPOCH=1700000000")
	if out, err := run.Output(ctx, run.Cmd{Args: args, Env: env, Dir: top}); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	built := filepath.Join(top, "RPMS", "noarch", "halvm-crtest-1.0-2.noarch.rpm")
	b, err := os.ReadFile(built)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := rpmutils.ReadHeader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r := hdr.GetRange()
	sigHdr, err := key.DetachSign(bytes.NewReader(b[r.Start:r.End]), testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	sigAll, err := key.DetachSign(bytes.NewReader(b[r.Start:]), testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(built)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(dir, "halvm-crtest-1.0-2.noarch.rpm")
	if _, err := rpmutils.RewriteWithSignatures(f, out, sigAll, sigHdr); err != nil {
		t.Fatalf("signing the rpmbuild package: %v", err)
	}
	return out
}

// TestMatchesCreaterepoC writes a repository and runs createrepo_c over the
// same package files (same paths, same mtimes), then compares primary,
// filelists and other package by package, element by element, attribute by
// attribute. Legitimately different, and so not compared: repomd.xml's
// revision and timestamps (ours are the epoch, createrepo_c's the clock),
// the metadata files' names, checksums and sizes (different gzip streams
// and whitespace), and createrepo_c's sqlite databases (not written here:
// dnf reads the XML). Whitespace-only text between elements is ignored.
func TestMatchesCreaterepoC(t *testing.T) {
	testenv.NeedCommand(t, "createrepo-c", "createrepo_c")
	testenv.NeedCommand(t, "rpm", "rpmbuild")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	key, _ := testKeys(t)
	in := t.TempDir()
	pkgs := []string{
		buildRPM(t, in, halvmSpec()),
		buildRPM(t, in, pkgSpec{Name: "halvm-gmp", Version: "2.4.3", Arch: "noarch",
			Files: map[string]string{"/usr/share/halvm-gmp/README": "gmp\n"}}),
		buildRPM(t, in, pkgSpec{Name: "Zeta", Version: "0.1.0", Release: "7", Epoch: "2", Arch: "x86_64",
			Files: map[string]string{"/opt/zeta/sbin/zetad": "z", "/usr/lib/sendmail": "m"}}),
		buildWithRPMBuild(ctx, t, in, key),
	}
	ours := filepath.Join(t.TempDir(), "repo")
	if err := Write(ours, pkgs, key, Options{Epoch: testEpoch, BaseURL: "https://example.invalid/rpm"}); err != nil {
		t.Fatal(err)
	}
	theirs := t.TempDir()
	copyTree(t, filepath.Join(ours, "Packages"), filepath.Join(theirs, "Packages"))
	if out, err := run.Output(ctx, run.Cmd{Args: []string{"createrepo_c", "--no-database", theirs}, Env: run.BaseEnv()}); err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, out)
	}

	for _, typ := range []string{"primary", "filelists", "other"} {
		ourXML, theirXML := metadataFile(t, ours, typ), metadataFile(t, theirs, typ)
		if bytes.Equal(ourXML, theirXML) {
			t.Logf("%s.xml is byte-identical to createrepo_c's", typ)
		} else {
			t.Logf("%s.xml differs from createrepo_c's in bytes; comparing semantically", typ)
		}
		a := parseXMLTree(t, ourXML)
		b := parseXMLTree(t, theirXML)
		if a.name != b.name || a.attr["packages"] != b.attr["packages"] {
			t.Errorf("%s: root <%s packages=%q>, createrepo_c <%s packages=%q>", typ, a.name, a.attr["packages"], b.name, b.attr["packages"])
		}
		ap, bp := byPkgID(a), byPkgID(b)
		if len(ap) != len(pkgs) {
			t.Errorf("%s: %d packages, want %d", typ, len(ap), len(pkgs))
		}
		for id, bn := range bp {
			an, ok := ap[id]
			if !ok {
				t.Errorf("%s: package %s is missing", typ, id)
				continue
			}
			var diffs []string
			diffTree(an, bn, "package", &diffs)
			for _, d := range diffs {
				t.Errorf("%s: package %s: %s", typ, pkgLabel(bn), d)
			}
		}
	}
	// repomd.xml: the same kinds of data, our revision and timestamps are the epoch.
	a := parseXMLTree(t, mustRead(t, filepath.Join(ours, "repodata", "repomd.xml")))
	b := parseXMLTree(t, mustRead(t, filepath.Join(theirs, "repodata", "repomd.xml")))
	if got, want := dataTypes(a), dataTypes(b); got != want {
		t.Errorf("repomd.xml data types %s, createrepo_c %s", got, want)
	}
	if rev := child(a, "revision"); rev == nil || rev.text != "1700000000" {
		t.Errorf("repomd.xml revision is not the epoch")
	}
}

// xnode is a parsed XML element: namespace-qualified name, attributes,
// text (whitespace-only text between elements dropped) and children.
type xnode struct {
	name     string
	attr     map[string]string
	text     string
	children []*xnode
}

func parseXMLTree(t *testing.T, b []byte) *xnode {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	var stack []*xnode
	var root *xnode
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("parsing XML: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			n := &xnode{name: tk.Name.Space + " " + tk.Name.Local, attr: map[string]string{}}
			for _, a := range tk.Attr {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
					continue
				}
				n.attr[a.Name.Space+" "+a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			n := stack[len(stack)-1]
			if strings.TrimSpace(n.text) == "" && len(n.children) > 0 {
				n.text = ""
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tk)
			}
		}
	}
	if root == nil {
		t.Fatal("empty XML document")
	}
	for k, v := range root.attr {
		if strings.HasSuffix(k, " packages") {
			root.attr["packages"] = v
		}
	}
	return root
}

func diffTree(a, b *xnode, where string, diffs *[]string) {
	if a.name != b.name {
		*diffs = append(*diffs, fmt.Sprintf("%s: element %q, createrepo_c %q", where, a.name, b.name))
		return
	}
	keys := map[string]bool{}
	for k := range a.attr {
		keys[k] = true
	}
	for k := range b.attr {
		keys[k] = true
	}
	var ks []string
	for k := range keys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		av, aok := a.attr[k]
		bv, bok := b.attr[k]
		if av != bv || aok != bok {
			*diffs = append(*diffs, fmt.Sprintf("%s@%s: ours %q (present %v), createrepo_c %q (present %v)", where, strings.TrimSpace(k), av, aok, bv, bok))
		}
	}
	if a.text != b.text {
		*diffs = append(*diffs, fmt.Sprintf("%s text: ours %q, createrepo_c %q", where, a.text, b.text))
	}
	n := max(len(a.children), len(b.children))
	for i := 0; i < n; i++ {
		switch {
		case i >= len(a.children):
			*diffs = append(*diffs, fmt.Sprintf("%s: we lack child %d %s %v %q", where, i, b.children[i].name, b.children[i].attr, b.children[i].text))
		case i >= len(b.children):
			*diffs = append(*diffs, fmt.Sprintf("%s: extra child %d %s %v %q", where, i, a.children[i].name, a.children[i].attr, a.children[i].text))
		default:
			diffTree(a.children[i], b.children[i], fmt.Sprintf("%s/%s[%d]", where, short(a.children[i].name), i), diffs)
		}
	}
}

func short(name string) string {
	_, l, _ := strings.Cut(name, " ")
	return l
}

func child(n *xnode, local string) *xnode {
	for _, c := range n.children {
		if short(c.name) == local {
			return c
		}
	}
	return nil
}

// byPkgID indexes the packages of a primary/filelists/other document.
func byPkgID(root *xnode) map[string]*xnode {
	m := map[string]*xnode{}
	for _, p := range root.children {
		id := p.attr[" pkgid"]
		if c := child(p, "checksum"); c != nil {
			id = c.text
		}
		m[id] = p
	}
	return m
}

func pkgLabel(p *xnode) string {
	if n := child(p, "name"); n != nil {
		return n.text
	}
	return p.attr[" name"]
}

func dataTypes(repomd *xnode) string {
	var ts []string
	for _, c := range repomd.children {
		if short(c.name) == "data" {
			ts = append(ts, c.attr[" type"])
		}
	}
	sort.Strings(ts)
	return strings.Join(ts, ",")
}

func metadataFile(t *testing.T, repo, typ string) []byte {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(repo, "repodata", "*-"+typ+".xml.gz"))
	if len(m) != 1 {
		t.Fatalf("%s metadata files in %s: %v", typ, repo, m)
	}
	return gunzip(t, m[0])
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The comparison itself must notice differences.
func TestDiffTreeFindsDifferences(t *testing.T) {
	a := parseXMLTree(t, []byte(`<m xmlns="x" xmlns:rpm="r"><p><rpm:entry name="a" flags="EQ"/><file>/etc/x</file></p></m>`))
	b := parseXMLTree(t, []byte(`<m xmlns="x" xmlns:rpm="r">
  <p>
    <rpm:entry name="a"/>
    <file>/etc/y</file>
    <file>/etc/z</file>
  </p>
</m>`))
	var diffs []string
	diffTree(a, b, "m", &diffs)
	if len(diffs) != 3 {
		t.Errorf("want 3 differences (flags, text, missing child), got %d: %q", len(diffs), diffs)
	}
	diffs = nil
	diffTree(a, a, "m", &diffs)
	if len(diffs) != 0 {
		t.Errorf("a tree differs from itself: %q", diffs)
	}
}
