package packaging

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/internal/testenv"
)

// built is one set of packages for the tools tests.
type built struct {
	debs, rpms map[string]string // package name -> path
}

func buildAll(t *testing.T, o Options, release int) built {
	t.Helper()
	ctx := context.Background()
	out := t.TempDir()
	b := built{debs: map[string]string{}, rpms: map[string]string{}}
	for _, f := range Formats {
		m := b.debs
		if f == RPM {
			m = b.rpms
		}
		for _, fl := range []string{"halvm", "halvm-gmp"} {
			p, err := BuildToolchain(ctx, f, toolchain(t, f, fl, release), o, out)
			must(t, err)
			m[fl] = p
		}
		p, err := BuildKeyring(ctx, f, Keyring{Version: testVersion, Release: release, Epoch: testEpoch}, o, out)
		must(t, err)
		m[KeyringName] = p
	}
	return b
}

func wantLines(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// TestDebTools checks the debs with dpkg-deb, lintian and gpgv.
func TestDebTools(t *testing.T) {
	testenv.NeedCommand(t, "dpkg", "dpkg-deb")
	testenv.NeedCommand(t, "lintian", "lintian")
	testenv.NeedCommand(t, "gpgv", "gpgv")
	testenv.NeedCommand(t, "binutils", "ar")
	k := testKey(t)
	b := buildAll(t, Options{Key: k}, 1)

	info := tool(t, "dpkg-deb", "--info", b.debs["halvm"])
	wantLines(t, "dpkg-deb --info halvm", info,
		"Package: halvm\n", "Version: 2.4.3-1\n", "Architecture: amd64\n", "Section: devel\n",
		"Depends: binutils, gcc, libc6, libffi8, libgmp-dev, libtinfo5, libxen-dev, make, perl, zlib1g\n",
		"Conflicts: halvm-gmp\n", "Replaces: halvm-gmp\n", "Homepage: "+Homepage+"\n", "Maintainer: "+Maintainer+"\n",
		"postinst", "prerm", "postrm", "DEVELOPMENT KEY")
	contents := tool(t, "dpkg-deb", "--contents", b.debs["halvm"])
	wantLines(t, "dpkg-deb --contents halvm", contents,
		"-rwxr-xr-x root/root", "./usr/bin/halvm-ghc\n", "./usr/lib/x86_64-linux-gnu/HaLVM-2.4.3/settings\n",
		"./usr/share/HaLVM-2.4.3/examples/Core/Hello/Hello.hs\n", "./usr/share/HaLVM-2.4.3/examples/Verify/Hello/Hello.hs\n",
		"./usr/bin/x86_64-unknown-HaLVM-ghc -> halvm-ghc\n", "./usr/share/doc/halvm/copyright\n",
		"2018-12-06 00:00 ./usr/bin/halvm-ghc\n")
	if strings.Contains(contents, "package.cache") {
		t.Errorf("the deb ships a generated package.cache")
	}
	kinfo := tool(t, "dpkg-deb", "--info", b.debs[KeyringName])
	wantLines(t, "dpkg-deb --info keyring", kinfo, "Architecture: all\n", "(DEVELOPMENT KEY)", k.Fingerprint(), "conffiles")
	kc := tool(t, "dpkg-deb", "--contents", b.debs[KeyringName])
	wantLines(t, "keyring contents", kc, "-rw-r--r-- root/root", "./etc/apt/keyrings/halvm.gpg\n")
	// The keyring file is the binary key gpgv reads.
	x := t.TempDir()
	tool(t, "dpkg-deb", "-x", b.debs[KeyringName], x)
	gpg, err := os.ReadFile(filepath.Join(x, "etc/apt/keyrings/halvm.gpg"))
	must(t, err)
	if string(gpg) != string(k.PublicBinary()) {
		t.Errorf("keyring deb carries other bytes than the public key")
	}

	// lintian: no errors or warnings on any deb. Its overrides ship in the
	// packages (usr/share/lintian/overrides) with their reasons.
	args := append([]string{"lintian", "--fail-on", "error,warning"},
		b.debs["halvm"], b.debs["halvm-gmp"], b.debs[KeyringName])
	out, err := toolErr(args...)
	if err != nil {
		t.Errorf("lintian: %v\n%s", err, out)
	}
	t.Logf("lintian:\n%s", out)

	// A signed deb: _gpgorigin is a detached signature of
	// debian-binary + control + data, which gpgv accepts; dpkg reads it.
	sb := buildAll(t, Options{Key: k, SignDeb: true}, 1)
	deb := sb.debs["halvm"]
	tool(t, "dpkg-deb", "--info", deb)
	dir := t.TempDir()
	ctx := context.Background()
	_ = ctx
	tool(t, "sh", "-c", "cd "+dir+" && ar x "+deb)
	members, err := os.ReadDir(dir)
	must(t, err)
	var data string
	for _, m := range members {
		if strings.HasPrefix(m.Name(), "data.tar") {
			data = m.Name()
		}
	}
	must(t, os.WriteFile(filepath.Join(dir, "key.gpg"), k.PublicBinary(), 0o644))
	tool(t, "sh", "-c", "cd "+dir+" && cat debian-binary control.tar.gz "+data+" > signed && gpgv --keyring ./key.gpg _gpgorigin signed")
	tool(t, "sh", "-c", "cd "+dir+" && printf x >> signed")
	if _, err := toolErr("sh", "-c", "cd "+dir+" && gpgv --keyring ./key.gpg _gpgorigin signed"); err == nil {
		t.Errorf("gpgv accepted a tampered deb payload")
	}
}

// TestRPMTools checks the rpms with rpm -qip/-qlp and verifies their
// signatures against the key in a scratch rpm database; a tampered rpm fails.
func TestRPMTools(t *testing.T) {
	testenv.NeedCommand(t, "rpm", "rpm", "rpmkeys")
	k := testKey(t)
	b := buildAll(t, Options{Key: k}, 1)
	p := b.rpms["halvm-gmp"]
	info := tool(t, "rpm", "-qip", p)
	wantLines(t, "rpm -qip", info, "Name        : halvm-gmp", "Version     : 2.4.3", "Release     : 1",
		"Architecture: x86_64", "Group       : Development/Languages", "License     : BSD-3-Clause",
		"Build Host  : halvm-release", "Signature   : RSA/SHA256", "URL         : "+Homepage, "integer-gmp")
	list := tool(t, "rpm", "-qlp", p)
	wantLines(t, "rpm -qlp", list, "/usr/bin/halvm-ghc\n", "/usr/lib64/HaLVM-2.4.3/settings\n",
		"/usr/lib64/HaLVM-2.4.3\n", "/usr/share/HaLVM-2.4.3/examples/Verify/Hello/Hello.hs\n", "/usr/share/licenses/halvm-gmp/LICENSE\n")
	for _, notOwned := range []string{"/usr\n", "/usr/bin\n", "/usr/lib64\n", "/usr/share\n"} {
		if strings.Contains(list, "\n"+notOwned) || strings.HasPrefix(list, notOwned) {
			t.Errorf("rpm owns the system directory %s", strings.TrimSpace(notOwned))
		}
	}
	deps := tool(t, "rpm", "-qp", "--requires", "--conflicts", "--obsoletes", p)
	wantLines(t, "rpm requires", deps, "xen-devel\n", "ncurses-compat-libs\n", "gmp-devel\n", "glibc\n", "halvm\n")
	scripts := tool(t, "rpm", "-qp", "--scripts", p)
	wantLines(t, "rpm scripts", scripts, "posttrans scriptlet", "/usr/bin/halvm-ghc-pkg recache", "preuninstall scriptlet",
		"rm -f /usr/lib64/HaLVM-2.4.3/package.conf.d/package.cache")
	if c := tool(t, "rpm", "-qp", "--qf", "%{PAYLOADCOMPRESSOR} %{ARCH}\n", b.rpms[KeyringName]); c != "zstd noarch\n" {
		t.Errorf("keyring rpm payload/arch %q", c)
	}
	cfg := tool(t, "rpm", "-qcp", b.rpms[KeyringName])
	wantLines(t, "keyring config files", cfg, RPMKey)

	db := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "RPM-GPG-KEY-halvm")
	must(t, os.WriteFile(keyFile, k.PublicArmored(), 0o644))
	// Without the key: rpm -K must not pass (NOKEY is not a pass).
	if out, err := toolErr("rpm", "--dbpath", db, "-K", p); err == nil {
		t.Errorf("rpm -K passed without the key imported:\n%s", out)
	}
	tool(t, "rpmkeys", "--dbpath", db, "--import", keyFile)
	for name, f := range b.rpms {
		out := tool(t, "rpm", "--dbpath", db, "-Kv", f)
		wantLines(t, "rpm -Kv "+name, out, "Header V4 RSA/SHA256 Signature, key ID", ": OK")
		if strings.Contains(out, "NOKEY") || strings.Contains(out, "BAD") {
			t.Errorf("rpm -Kv %s:\n%s", name, out)
		}
	}
	// Tamper with the last byte of the payload.
	data, err := os.ReadFile(p)
	must(t, err)
	data[len(data)-1] ^= 0xff
	bad := filepath.Join(t.TempDir(), "tampered.rpm")
	must(t, os.WriteFile(bad, data, 0o644))
	if out, err := toolErr("rpm", "--dbpath", db, "-K", bad); err == nil {
		t.Errorf("rpm -K accepted a tampered rpm:\n%s", out)
	}
}
