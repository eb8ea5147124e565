package checks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/sbom"
	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/diff"
	"github.com/halvm/halvm-release/verify/remote"
	"github.com/halvm/halvm-release/verify/signed"
)

// CheckRebuild is the reproducibility check's name.
const CheckRebuild = "rebuild-identical"

// Variation is how a rebuild's conditions differ from the release's.
type Variation struct {
	// WorkDir is the rebuild's build root: a different parent directory
	// than the release's.
	WorkDir string
	// Umask is the process umask during the rebuild (0o077).
	Umask int
	// TZ is the local time zone during the rebuild.
	TZ string
	// NoNetwork runs the rebuild in a network namespace of its own with no
	// interface up: it proves the build needs nothing but the cache.
	NoNetwork bool
	// User is the rebuild's USER and LOGNAME (with a HOME and TMPDIR of
	// its own); the user id stays: images are built as root.
	User string
	// Env is extra environment (LC_ALL, LANG) of the rebuild process,
	// whose whole environment is in reverse order: external programs get
	// an explicit environment (internal/run), so this proves host
	// settings do not leak into the build.
	Env []string
}

// DefaultVariation is the rebuild's variation below scratch.
func DefaultVariation(scratch string) Variation {
	return Variation{
		WorkDir:   filepath.Join(scratch, "elsewhere", "build-root"),
		Umask:     0o077,
		TZ:        "Pacific/Kiritimati",
		User:      "halvm-rebuild",
		NoNetwork: true,
		Env:       []string{"LANG=fr_FR.UTF-8", "LC_ALL=de_DE.UTF-8"},
	}
}

// Describe names the variation in the evidence.
func (v Variation) Describe() string {
	net := ""
	if v.NoNetwork {
		net = "no network, "
	}
	return fmt.Sprintf("a separate process, %sbuild root %s, umask %04o, TZ=%s, USER=%s with its own HOME and TMPDIR, %s, environment reversed", net, v.WorkDir, v.Umask, v.TZ, v.User, strings.Join(v.Env, " "))
}

// Publications are what a rebuild starts from besides the lock.
type Publications struct {
	// Apt and Dnf are the publications the release's own extended (what
	// was live when they were staged; "" for a first release): a rebuild
	// stages its repositories on top of the same, so their metadata can be
	// compared byte for byte.
	Apt, Dnf string
	// Signed are the release's own signed publications and ArchiveKey its
	// archive public key: a rebuild has no private key, it reuses a
	// published signature exactly where it verifies over the rebuilt bytes
	// (pgp.PublishedSignatures), so identical content gives identical
	// signed artifacts and anything else differs.
	Signed     []string
	ArchiveKey []byte
	// Independent marks the independent rebuild of a CI release graph,
	// which runs before the release exists (nothing signed to reuse) and
	// signs with the archive key file instead.
	Independent bool
}

// reproducibleKinds are the artifacts a rebuild must reproduce.
var reproducibleKinds = []pipeline.Kind{pipeline.KindTreeManifest, pipeline.KindDeb, pipeline.KindRPM, pipeline.KindOCIImage, pipeline.KindOCILayout, pipeline.KindSPDX, pipeline.KindCycloneDX, pipeline.KindProvenance, pipeline.KindLock}

func reproducibilityChecks(c Config) []verify.Check {
	return []verify.Check{{
		Name: CheckRebuild, Family: verify.Reproducibility, Required: true,
		// The whole build again, image root filesystems included: about 5
		// minutes on an idle 2-core machine, twice that and more under load.
		Timeout: 40 * time.Minute,
		Doc:     "a rebuild from the lock in a separate process without network, with a fresh toolchain step cache, another build root, umask 077, another TZ, locale, USER, HOME and TMPDIR and a reversed environment, gives every artifact and the repository metadata byte for byte",
		Needs: []verify.Prereq{{
			What: "a rebuild function", Remedy: "run the verification through the release (go run mage.go demo) or mage verify with the lock",
			Check: func(context.Context) error {
				if c.Rebuild == nil {
					return errors.New("this run has no way to rebuild the release")
				}
				return nil
			},
		}},
		Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
			out := filepath.Join(env.Scratch, "rebuild-dist")
			v := DefaultVariation(env.Scratch)
			apt, dnf := "", ""
			var from Publications
			if a, err := repoDir(env, c.AptDir, pipeline.KindAptRepo); err == nil {
				apt, from.Apt = a, PreviousPublication(a)
				from.Signed = append(from.Signed, a)
			}
			if d, err := repoDir(env, c.DnfDir, pipeline.KindDnfRepo); err == nil {
				dnf, from.Dnf = d, PreviousPublication(d)
				from.Signed = append(from.Signed, d)
			}
			from.ArchiveKey = c.ArchiveKey
			if err := c.Rebuild(ctx, out, v, from); err != nil {
				return verify.Evidence{}, fmt.Errorf("rebuilding the release (%s): %w", v.Describe(), err)
			}
			second, err := pipeline.ReadLedger(filepath.Join(out, "ledger.json"))
			if err != nil {
				return verify.Evidence{}, fmt.Errorf("reading the rebuild's ledger: %w", err)
			}
			ev, err := CompareRebuild(ctx, env, out, second, apt, dnf)
			if why, skipped := c.Skipped["sign"]; skipped {
				// A snapshot that skipped signing has no SHA256SUMS.
				ev.Details = append(ev.Details, "not compared: SHA256SUMS and its signatures (the release skipped signing: "+why+")")
			} else if serr := compareSignedSums(env, out, c); serr != nil {
				ev.Details = append(ev.Details, serr.details...)
				err = errors.Join(err, serr.err)
			} else {
				ev.Checked += 3
				ev.Details = append(ev.Details, "identical SHA256SUMS over the rebuilt files; SHA256SUMS.asc and SHA256SUMS.sig verify over it")
			}
			if _, skipped := c.Skipped["sign"]; !skipped {
				// Each published artifact's verdict, judged as the URL
				// rebuild judges it: what verify's summary states.
				vs, verr := rebuildVerdicts(ctx, env, out, apt, dnf, c)
				ev.Verdicts = remote.Verdicts(vs)
				err = errors.Join(err, verr)
			}
			ev.Summary = strings.TrimSpace(ev.Summary + " (" + v.Describe() + ")")
			return ev, err
		},
	}}
}

// CompareRebuild compares the release in env with a rebuild in out (its
// ledger second): every reproducible artifact by digest, and the
// repository metadata (apt Packages, dnf primary) of the release's
// publications apt and dnf with the rebuild's. Every artifact is reported;
// a mismatch's details carry verify/diff's listing.
func CompareRebuild(ctx context.Context, env *verify.Env, out string, second *pipeline.Ledger, apt, dnf string) (verify.Evidence, error) {
	var ev verify.Evidence
	var bad []string
	for _, k := range reproducibleKinds {
		firsts, err := env.Artifacts(k, "")
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		for _, a := range firsts {
			var b *pipeline.Artifact
			for _, x := range second.Find(k, a.Flavour) {
				if x.Name == a.Name {
					x := x
					b = &x
				}
			}
			label := fmt.Sprintf("%s %s", k, a.Name)
			if a.Flavour != "" && a.Flavour != a.Name {
				label += " (" + a.Flavour + ")"
			}
			switch {
			case b == nil:
				bad = append(bad, label+": the rebuild did not make it")
				ev.Details = append(ev.Details, "MISSING   "+label)
			case b.SHA256 == a.SHA256 && b.Size == a.Size:
				ev.Checked++
				ev.Details = append(ev.Details, "identical "+label+" sha256 "+a.SHA256)
			default:
				bad = append(bad, fmt.Sprintf("%s: sha256 %s, the rebuild's %s", label, a.SHA256, b.SHA256))
				ev.Details = append(ev.Details, "DIFFERS   "+label)
				if a.Path == "" || b.Path == "" {
					continue // an image manifest digest: the layout tarball's listing shows the bytes
				}
				d, _ := verify.CompareBuilds(ctx, env.Path(a.Path), filepath.Join(out, filepath.FromSlash(b.Path)), diff.Options{}, false)
				for _, l := range d.Details {
					ev.Details = append(ev.Details, "    "+l)
				}
			}
		}
	}
	// Repository metadata: the rebuild's own staged publications.
	for _, m := range []struct {
		kind pipeline.Kind
		dir  string
		glob string
	}{{pipeline.KindAptRepo, apt, "dists/*/main/binary-*/Packages"}, {pipeline.KindDnfRepo, dnf, "repodata/*-primary.xml.gz"}} {
		if m.dir == "" {
			bad = append(bad, fmt.Sprintf("no %s publication to compare", m.kind))
			continue
		}
		as := second.Find(m.kind, "")
		if len(as) == 0 {
			bad = append(bad, fmt.Sprintf("the rebuild staged no %s publication", m.kind))
			continue
		}
		// The rebuild's ledger records its publications relative to its
		// publish root, out/repos.
		dir2 := as[0].Path
		if !filepath.IsAbs(dir2) {
			dir2 = filepath.Join(out, "repos", filepath.FromSlash(dir2))
		}
		firsts, _ := filepath.Glob(filepath.Join(m.dir, m.glob))
		if len(firsts) == 0 {
			bad = append(bad, fmt.Sprintf("%s: no %s in %s", m.kind, m.glob, m.dir))
		}
		sort.Strings(firsts)
		for _, f := range firsts {
			rel, _ := filepath.Rel(m.dir, f)
			g := filepath.Join(dir2, rel)
			_, s1, err1 := fsutil.HashFile(f)
			_, s2, err2 := fsutil.HashFile(g)
			label := fmt.Sprintf("%s %s", m.kind, rel)
			switch {
			case err1 != nil || err2 != nil:
				bad = append(bad, fmt.Sprintf("%s: %v", label, errors.Join(err1, err2)))
				ev.Details = append(ev.Details, "MISSING   "+label)
			case s1 == s2:
				ev.Checked++
				ev.Details = append(ev.Details, "identical "+label+" sha256 "+s1)
			default:
				bad = append(bad, fmt.Sprintf("%s: sha256 %s, the rebuild's %s", label, s1, s2))
				ev.Details = append(ev.Details, "DIFFERS   "+label)
				d, _ := verify.CompareBuilds(ctx, f, g, diff.Options{}, false)
				for _, l := range d.Details {
					ev.Details = append(ev.Details, "    "+l)
				}
			}
		}
	}
	if len(bad) > 0 {
		return ev, fmt.Errorf("the rebuild differs: %d of %d artifact(s):\n%s", len(bad), len(bad)+ev.Checked, strings.Join(bad, "\n"))
	}
	ev.Summary = fmt.Sprintf("%d artifacts (tree manifests, .deb, .rpm, image digests and tarball, SBOMs, the lock, Packages, primary) identical in the rebuild", ev.Checked)
	return ev, nil
}

// rebuildVerdicts judges every artifact of the release in env against the
// rebuild in out exactly as the URL rebuild does (remote.Compare, with the
// public keys of c): each file SHA256SUMS lists, SHA256SUMS and its
// signatures, every file of the publications apt and dnf against the
// rebuild's. The error names each artifact that is not IDENTICAL.
func rebuildVerdicts(ctx context.Context, env *verify.Env, out, apt, dnf string, c Config) ([]remote.Artifact, error) {
	as, err := env.Artifacts(pipeline.KindChecksums, "")
	if err != nil || len(as) == 0 {
		return nil, fmt.Errorf("no verdict per artifact: the release records no %s (%v)", sbom.SumsName, err)
	}
	sumsPath := env.Path(as[0].Path)
	data, err := os.ReadFile(sumsPath)
	if err != nil {
		return nil, fmt.Errorf("no verdict per artifact: %w", err)
	}
	sums, err := sbom.ParseSums(data)
	if err != nil {
		return nil, fmt.Errorf("no verdict per artifact: %s: %w", sumsPath, err)
	}
	b, err := remote.ReadRebuilt(out)
	if err != nil {
		return nil, fmt.Errorf("no verdict per artifact: %w", err)
	}
	keys := signed.Keys{Archive: c.ArchiveKey}
	if len(c.CosignKey) > 0 {
		keys.CosignBlob = func(data, sig []byte) error { return cosign.VerifyBlob(c.CosignKey, data, sig) }
	}
	r := &remote.Release{Keyring: c.ArchiveKey, Files: filepath.Dir(sumsPath), Apt: apt, Dnf: dnf, Sums: sums}
	vs := remote.Compare(ctx, r, b, keys, "")
	var bad []string
	for _, v := range vs {
		if v.Verdict.Status != signed.Identical {
			bad = append(bad, fmt.Sprintf("%s %s (%s): %s", v.Verdict.Status, v.Name, v.Verdict.How, strings.Join(v.Verdict.Detail, "; ")))
		}
	}
	if len(bad) > 0 {
		return vs, fmt.Errorf("%d of %d published artifact(s) not IDENTICAL:\n%s", len(bad), len(vs), strings.Join(bad, "\n"))
	}
	return vs, nil
}

type sumsFailure struct {
	err     error
	details []string
}

// compareSignedSums checks the release's signed checksum list against the
// rebuild, which signs nothing: SHA256SUMS made over the rebuilt files it
// lists must be the release's byte for byte, and the release's OpenPGP
// (.asc) and cosign (.sig) signatures must verify over it with the
// public keys.
func compareSignedSums(env *verify.Env, out string, c Config) *sumsFailure {
	fail := func(format string, a ...any) *sumsFailure {
		msg := fmt.Sprintf(format, a...)
		return &sumsFailure{err: errors.New(msg), details: []string{"DIFFERS   " + msg}}
	}
	as, err := env.Artifacts(pipeline.KindChecksums, "")
	if err != nil || len(as) == 0 {
		return fail("%s: the release records no signed checksum list (%v)", sbom.SumsName, err)
	}
	released := filepath.Dir(env.Path(as[0].Path))
	keys := signed.Keys{Archive: c.ArchiveKey}
	if len(c.CosignKey) > 0 {
		keys.CosignBlob = func(data, sig []byte) error { return cosign.VerifyBlob(c.CosignKey, data, sig) }
	}
	var f sumsFailure
	for _, v := range signed.Sums(released, out, keys) {
		if v.Status != signed.Identical {
			f.err = errors.Join(f.err, fmt.Errorf("%s: %s", v.Path, strings.Join(v.Detail, "; ")))
			f.details = append(f.details, strings.Split(v.String(), "\n")...)
		}
	}
	if f.err != nil {
		return &f
	}
	return nil
}
