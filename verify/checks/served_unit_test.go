package checks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/debian"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/checks"
)

// fakePublications makes apt and dnf publish roots under root with one
// publication per date (named 0001-..., in order) holding only what the
// served-publications check reads (Release Date, repomd revision), and
// points current at publication cur (1-based).
func fakePublications(t *testing.T, root string, cur int, dates ...time.Time) {
	t.Helper()
	for _, repo := range []string{"apt", "dnf"} {
		for i, d := range dates {
			p := filepath.Join(root, repo, "publications", fmt.Sprintf("%04d-%012d", i+1, i))
			var f, body string
			if repo == "apt" {
				f, body = filepath.Join(p, "dists", "stable", "Release"), "Origin: HaLVM\nDate: "+d.UTC().Format(debian.ReleaseDateFormat)+"\n"
			} else {
				f, body = filepath.Join(p, "repodata", "repomd.xml"), fmt.Sprintf("<?xml version=\"1.0\"?>\n<repomd><revision>%d</revision></repomd>\n", d.Unix())
			}
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		link := filepath.Join(root, repo, "current")
		os.Remove(link)
		if err := os.Symlink(fmt.Sprintf("publications/%04d-%012d", cur, cur-1), link); err != nil {
			t.Fatal(err)
		}
	}
}

func runServedPublications(t *testing.T, root string) verify.Result {
	t.Helper()
	for _, c := range checks.Suite(checks.Config{ServedRoot: root}) {
		if c.Name == checks.CheckServedPublications {
			rep, err := verify.Run(context.Background(), &verify.Env{RepoRoot: root}, []verify.Check{c}, verify.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return rep.Results[0]
		}
	}
	t.Fatal("no served-publications check in the suite with a served root")
	return verify.Result{}
}

// TestServedPublicationsOrder: current must be the newest publication by
// its signed date; a current switched back, or dates that do not increase,
// fail naming the publications.
func TestServedPublicationsOrder(t *testing.T) {
	d0 := time.Date(2018, 3, 1, 0, 0, 0, 0, time.UTC)
	t.Run("newest served", func(t *testing.T) {
		root := t.TempDir()
		fakePublications(t, root, 2, d0, d0.Add(time.Second))
		wantStatus(t, runServedPublications(t, root), verify.Pass, "apt: current -> 0002-")
	})
	t.Run("current switched back", func(t *testing.T) {
		root := t.TempDir()
		fakePublications(t, root, 1, d0, d0.Add(time.Second))
		wantStatus(t, runServedPublications(t, root), verify.Fail, "apt: current (0001-000000000000, dated 2018-03-01T00:00:00Z) is older than publication 0002-000000000001", "dnf: current (0001-")
	})
	t.Run("dates do not increase", func(t *testing.T) {
		root := t.TempDir()
		fakePublications(t, root, 2, d0, d0)
		wantStatus(t, runServedPublications(t, root), verify.Fail, "publication 0002-000000000001 (dated 2018-03-01T00:00:00Z) is not later than the one before it")
	})
	// With a history (publish records what went live), a publication
	// staged by a snapshot or a failed run was never served: it does not
	// count; one that went live does, even when current was switched back.
	writeHistory := func(t *testing.T, root string, names ...string) {
		for _, repo := range []string{"apt", "dnf"} {
			if err := os.WriteFile(filepath.Join(root, repo, "history"), []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("a newer staged publication never went live", func(t *testing.T) {
		root := t.TempDir()
		fakePublications(t, root, 2, d0, d0.Add(time.Second), d0.Add(2*time.Second))
		writeHistory(t, root, "0001-000000000000", "0002-000000000001")
		wantStatus(t, runServedPublications(t, root), verify.Pass, "apt: current -> 0002-000000000001 (date 2018-03-01T00:00:01Z) of 2 publications")
	})
	t.Run("current switched back below a live one", func(t *testing.T) {
		root := t.TempDir()
		fakePublications(t, root, 2, d0, d0.Add(time.Second), d0.Add(2*time.Second))
		writeHistory(t, root, "0001-000000000000", "0002-000000000001", "0003-000000000002")
		wantStatus(t, runServedPublications(t, root), verify.Fail, "apt: current (0002-000000000001, dated 2018-03-01T00:00:01Z) is older than publication 0003-000000000002")
	})
	t.Run("current leads elsewhere", func(t *testing.T) {
		root := t.TempDir()
		fakePublications(t, root, 1, d0)
		link := filepath.Join(root, "apt", "current")
		os.Remove(link)
		if err := os.Symlink("../../elsewhere", link); err != nil {
			t.Fatal(err)
		}
		if _, err := checks.ServedPublication(filepath.Join(root, "apt")); err == nil || !strings.Contains(err.Error(), "want publications/<name>") {
			t.Errorf("ServedPublication of a link leading out: %v", err)
		}
		wantStatus(t, runServedPublications(t, root), verify.Fail, `points at "../../elsewhere"`)
	})
}

// TestRPMVerdict: rpm -Kv's lines say which of digest mismatch, unknown
// key, bad or missing signature it is (the forms rpm 4.18 prints).
func TestRPMVerdict(t *testing.T) {
	for _, c := range []struct {
		out  string
		want checks.RPMResult
	}{
		{"/x.rpm:\n    Header V4 RSA/SHA256 Signature, key ID 1a2b3c4d: OK\n    Header SHA256 digest: OK\n    Payload SHA256 digest: OK\n    V4 RSA/SHA256 Signature, key ID 1a2b3c4d: OK\n    MD5 digest: OK\n", checks.RPMOK},
		{"/x.rpm:\n    Header V4 RSA/SHA256 Signature, key ID 1a2b3c4d: OK\n    Header SHA256 digest: OK\n    Payload SHA256 digest: BAD (Expected 00 != 11)\n    V4 RSA/SHA256 Signature, key ID 1a2b3c4d: BAD\n    MD5 digest: BAD (Expected 22 != 33)\n", checks.RPMDigestMismatch},
		{"/x.rpm:\n    Header V4 RSA/SHA256 Signature, key ID 1a2b3c4d: NOKEY\n    Header SHA256 digest: OK\n    Payload SHA256 digest: OK\n    V4 RSA/SHA256 Signature, key ID 1a2b3c4d: NOKEY\n    MD5 digest: OK\n", checks.RPMUnknownKey},
		{"/x.rpm:\n    Header V4 RSA/SHA256 Signature, key ID 1a2b3c4d: BAD\n    Header SHA256 digest: OK\n    Payload SHA256 digest: OK\n", checks.RPMBadSignature},
		{"/x.rpm:\n    Header SHA256 digest: OK\n    Payload SHA256 digest: OK\n    MD5 digest: OK\n", checks.RPMNotSigned},
		{"error: /x.rpm: not an rpm package\n", checks.RPMFailed},
	} {
		got, why := checks.RPMVerdict(c.out)
		if got != c.want {
			t.Errorf("%q: %s (%s), want %s", c.out, got, why, c.want)
		}
	}
}
