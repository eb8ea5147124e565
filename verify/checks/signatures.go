package checks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/sbom"
	"github.com/halvm/halvm-release/verify"
)

// Names of the signature checks.
const (
	CheckAptSignatures   = "apt-release-signatures"
	CheckDnfRepomdSig    = "dnf-repomd-signature"
	CheckRPMSignatures   = "rpm-signatures"
	CheckSumsSignatures  = "sha256sums-signatures"
	CheckImageSignatures = "image-signatures"
)

// ImagePredicates are the attestations every image must carry.
var ImagePredicates = []string{cosign.PredicateSPDX, cosign.PredicateCycloneDX, cosign.PredicateSLSA1}

func signatureChecks(c Config) []verify.Check {
	gpgv := verify.NeedCommand("gpgv", "gpgv")
	return []verify.Check{
		{
			Name: CheckAptSignatures, Family: verify.Signatures, Required: true,
			Doc:   "InRelease and Release.gpg of every suite verify with gpgv against the pinned archive key only",
			Needs: []verify.Prereq{gpgv},
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				dir, err := repoDir(env, c.AptDir, pipeline.KindAptRepo)
				if err != nil {
					return verify.Evidence{}, err
				}
				return aptSignatures(ctx, env.Scratch, dir, c.ArchiveKey)
			},
		},
		{
			Name: CheckDnfRepomdSig, Family: verify.Signatures, Required: true,
			Doc:   "repodata/repomd.xml.asc verifies with gpgv against the pinned archive key only",
			Needs: []verify.Prereq{gpgv},
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				dir, err := repoDir(env, c.DnfDir, pipeline.KindDnfRepo)
				if err != nil {
					return verify.Evidence{}, err
				}
				fpr, err := gpgvVerify(ctx, env.Scratch, c.ArchiveKey, filepath.Join(dir, "repodata", "repomd.xml.asc"), filepath.Join(dir, "repodata", "repomd.xml"))
				if err != nil {
					return verify.Evidence{}, err
				}
				return verify.Checked(1, "repomd.xml of %s signed by %s (gpgv)", filepath.Base(dir), fpr), nil
			},
		},
		{
			Name: CheckRPMSignatures, Family: verify.Signatures, Required: true,
			Doc:   "every rpm (dnf repository and ledger) passes `rpm -K` against an rpmdb holding only the pinned archive key",
			Needs: []verify.Prereq{verify.NeedCommand("rpm", "rpm", "rpmkeys")},
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				dir, err := repoDir(env, c.DnfDir, pipeline.KindDnfRepo)
				if err != nil {
					return verify.Evidence{}, err
				}
				files, err := rpmFiles(env, dir)
				if err != nil {
					return verify.Evidence{}, err
				}
				return rpmSignatures(ctx, env.Scratch, c.ArchiveKey, files)
			},
		},
		{
			Name: CheckSumsSignatures, Family: verify.Signatures, Required: c.requiredUnless("sign"),
			Doc:   "SHA256SUMS.asc verifies with gpgv, SHA256SUMS.sig with the pinned cosign key, and every listed file has its sum",
			Needs: []verify.Prereq{gpgv, c.stageRan("sign")},
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				return sumsSignatures(ctx, env, c)
			},
		},
		{
			Name: CheckImageSignatures, Family: verify.Signatures, Required: c.requiredUnless("image", "sign"),
			Doc:   "every pushed image carries a cosign signature over its digest and SPDX, CycloneDX and SLSA attestations by the pinned key",
			Needs: []verify.Prereq{c.stageRan("image", "sign")},
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				return imageSignatures(ctx, env, c.CosignKey)
			},
		},
	}
}

// gpgvVerify runs gpgv with a keyring holding only pub and returns the
// fingerprint of the valid signature (from gpgv's status output). sig ""
// verifies a clearsigned data file.
func gpgvVerify(ctx context.Context, scratch string, pub []byte, sig, data string) (string, error) {
	bin, _, _, err := keyForms(pub)
	if err != nil {
		return "", err
	}
	home, err := os.MkdirTemp(scratch, "gnupg-")
	if err != nil {
		return "", err
	}
	kr := filepath.Join(home, "archive.gpg")
	if err := os.WriteFile(kr, bin, 0o600); err != nil {
		return "", err
	}
	args := []string{"gpgv", "--homedir", home, "--keyring", kr, "--status-fd", "1"}
	what := filepath.Base(data)
	if sig != "" {
		args = append(args, sig)
		what = filepath.Base(sig) + " over " + filepath.Base(data)
	}
	args = append(args, data)
	out, err := run.Output(ctx, run.Cmd{Args: args, Env: run.BaseEnv("GNUPGHOME=" + home)})
	if err != nil {
		return "", fmt.Errorf("gpgv rejects %s (%s): %w", what, data, err)
	}
	var valid []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == "[GNUPG:]" && f[1] == "VALIDSIG" {
			valid = append(valid, f[len(f)-1]) // the primary key's fingerprint
		}
	}
	if len(valid) == 0 {
		return "", fmt.Errorf("gpgv accepted %s (%s) but reported no VALIDSIG: treating it as unverified", what, data)
	}
	return strings.Join(valid, ","), nil
}

func aptSignatures(ctx context.Context, scratch, dir string, pub []byte) (verify.Evidence, error) {
	suites, err := filepath.Glob(filepath.Join(dir, "dists", "*"))
	if err != nil {
		return verify.Evidence{}, err
	}
	if len(suites) == 0 {
		return verify.Evidence{}, fmt.Errorf("no dists/<suite> in the apt repository %s", dir)
	}
	var ev verify.Evidence
	var errs []error
	fprs := map[string]bool{}
	for _, s := range suites {
		for _, sd := range [][2]string{{"", filepath.Join(s, "InRelease")}, {filepath.Join(s, "Release.gpg"), filepath.Join(s, "Release")}} {
			fpr, err := gpgvVerify(ctx, scratch, pub, sd[0], sd[1])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fprs[fpr] = true
			ev.Checked++
			rel, _ := filepath.Rel(dir, sd[1])
			if sd[0] != "" {
				rel, _ = filepath.Rel(dir, sd[0])
			}
			ev.Details = append(ev.Details, rel+": good signature by "+fpr)
		}
	}
	if len(errs) > 0 {
		return ev, fmt.Errorf("%d apt signature(s) do not verify:\n%w", len(errs), errors.Join(errs...))
	}
	ev.Summary = fmt.Sprintf("%d apt signatures (InRelease, Release.gpg of %d %s) good by %s (gpgv)", ev.Checked, len(suites), plural(len(suites), "suite", "suites"), strings.Join(slices.Sorted(maps.Keys(fprs)), ", "))
	return ev, nil
}

// rpmFiles lists the rpms of the dnf publication and of the ledger.
func rpmFiles(env *verify.Env, dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(p, ".rpm") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the dnf repository's rpms: %w", err)
	}
	if env.Ledger != nil {
		for _, a := range env.Ledger.Find(pipeline.KindRPM, "") {
			files = append(files, env.Path(a.Path))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no rpm in the dnf repository %s nor in the ledger", dir)
	}
	sort.Strings(files)
	return files, nil
}

// rpmSignatures imports only pub into a fresh rpmdb and checks every file
// with rpm -K: a package signed by another key fails with NOKEY (rpm -K
// against the host's rpmdb would exit 0 then).
func rpmSignatures(ctx context.Context, scratch string, pub []byte, files []string) (verify.Evidence, error) {
	_, arm, fprs, err := keyForms(pub)
	if err != nil {
		return verify.Evidence{}, err
	}
	db, err := os.MkdirTemp(scratch, "rpmdb-")
	if err != nil {
		return verify.Evidence{}, err
	}
	keyFile := filepath.Join(scratch, "archive.asc")
	if err := os.WriteFile(keyFile, arm, 0o644); err != nil {
		return verify.Evidence{}, err
	}
	env := run.BaseEnv()
	if err := run.Run(ctx, run.Cmd{Args: []string{"rpmkeys", "--dbpath", db, "--import", keyFile}, Env: env}); err != nil {
		return verify.Evidence{}, fmt.Errorf("importing the archive key into a scratch rpmdb: %w", err)
	}
	var ev verify.Evidence
	var bad []string
	kinds := map[string]int{}
	for _, f := range files {
		out, err := run.Output(ctx, run.Cmd{Args: []string{"rpm", "--dbpath", db, "-Kv", f}, Env: env})
		text := string(out)
		if err != nil {
			var re *run.Error
			if errors.As(err, &re) && strings.TrimSpace(re.Stderr) != "" {
				text += "\n" + re.Stderr
			}
		}
		kind, why := RPMVerdict(text)
		if err != nil && kind == RPMOK {
			kind, why = RPMFailed, "rpm -K failed: "+err.Error()
		}
		if kind != RPMOK {
			kinds[string(kind)]++
			bad = append(bad, fmt.Sprintf("%s: %s: %s", f, kind, why))
			continue
		}
		ev.Checked++
		ev.Details = append(ev.Details, f+": digests signatures OK")
	}
	if len(bad) > 0 {
		var ks []string
		for k, n := range kinds {
			ks = append(ks, fmt.Sprintf("%d %s", n, k))
		}
		sort.Strings(ks)
		return ev, fmt.Errorf("%d of %d rpm(s) do not verify against the archive key %s (%s):\n%s", len(bad), len(files), strings.Join(fprs, ","), strings.Join(ks, ", "), strings.Join(bad, "\n"))
	}
	ev.Summary = fmt.Sprintf("%d rpms: digests and signatures OK against an rpmdb holding only %s (rpmkeys --import, rpm -K)", ev.Checked, strings.Join(fprs, ","))
	return ev, nil
}

func sumsSignatures(ctx context.Context, env *verify.Env, c Config) (verify.Evidence, error) {
	sums, err := env.Artifacts(pipeline.KindChecksums, "")
	if err != nil {
		return verify.Evidence{}, err
	}
	sumsPath := env.Path(sums[0].Path)
	f, err := env.Open(sums[0])
	if err != nil {
		return verify.Evidence{}, err
	}
	f.Close()
	dir := filepath.Dir(sumsPath)
	data, err := os.ReadFile(sumsPath)
	if err != nil {
		return verify.Evidence{}, err
	}
	var errs []error
	var ev verify.Evidence
	fpr, err := gpgvVerify(ctx, env.Scratch, c.ArchiveKey, filepath.Join(dir, sbom.SumsOpenPGP), sumsPath)
	if err != nil {
		errs = append(errs, err)
	} else {
		ev.Checked++
		ev.Details = append(ev.Details, sbom.SumsOpenPGP+": good signature by "+fpr+" (gpgv)")
	}
	sig, err := os.ReadFile(filepath.Join(dir, sbom.SumsCosign))
	if err == nil {
		err = cosign.VerifyBlob(c.CosignKey, data, sig)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w (verified with the pinned cosign public key)", sbom.SumsCosign, err))
	} else {
		ev.Checked++
		ev.Details = append(ev.Details, sbom.SumsCosign+": good cosign blob signature by the pinned key")
	}
	list, err := sbom.ParseSums(data)
	if err == nil {
		err = sbom.VerifySums(dir, data)
	}
	if err != nil {
		errs = append(errs, err)
	} else {
		ev.Checked += len(list)
	}
	if len(errs) > 0 {
		return ev, fmt.Errorf("%s does not verify:\n%w", sbom.SumsName, errors.Join(errs...))
	}
	ev.Summary = fmt.Sprintf("SHA256SUMS signed (OpenPGP %s, cosign) and its %d files match", fpr, len(list))
	return ev, nil
}

func imageSignatures(ctx context.Context, env *verify.Env, pub []byte) (verify.Evidence, error) {
	imgs, err := env.Artifacts(pipeline.KindOCIImage, "")
	if err != nil {
		return verify.Evidence{}, err
	}
	var ev verify.Evidence
	var errs []error
	for _, a := range imgs {
		if a.Ref == "" {
			errs = append(errs, fmt.Errorf("image %s (%s) was not pushed (no Ref in the ledger): its signatures live in a registry; push it (set HALVM_REGISTRY)", a.Name, a.Flavour))
			continue
		}
		ref, err := name.NewDigest(a.Ref)
		if err != nil {
			errs = append(errs, fmt.Errorf("image %s: ref %q is not by digest: %w", a.Name, a.Ref, err))
			continue
		}
		if got := strings.TrimPrefix(ref.DigestStr(), "sha256:"); a.SHA256 != "" && got != a.SHA256 {
			errs = append(errs, fmt.Errorf("image %s: ref %s names digest %s, the ledger says %s", a.Name, a.Ref, got, a.SHA256))
			continue
		}
		v, err := cosign.Verify(ctx, ref, cosign.VerifyOptions{PublicKey: pub, PredicateTypes: ImagePredicates, Remote: registryOptions(ref)})
		if err != nil {
			errs = append(errs, fmt.Errorf("image %s: %w", a.Name, err))
			continue
		}
		ev.Checked += v.Signatures + len(v.PredicateTypes)
		ev.Details = append(ev.Details, fmt.Sprintf("%s: %d signature(s), attestations %s", a.Ref, v.Signatures, strings.Join(v.PredicateTypes, ", ")))
	}
	if len(errs) > 0 {
		return ev, fmt.Errorf("%d image(s) not verified:\n%w", len(errs), errors.Join(errs...))
	}
	ev.Summary = fmt.Sprintf("%d images signed and attested (%d signatures and attestations) by the pinned cosign key", len(imgs), ev.Checked)
	return ev, nil
}

// registryOptions are the registry client options for ref (none: a
// registry on 127.0.0.1 or localhost is spoken to over plain HTTP by the
// client itself, and no credentials are needed to read).
func registryOptions(name.Reference) []remote.Option { return nil }

// RPMResult is what `rpm -Kv` said of a package.
type RPMResult string

const (
	RPMOK             RPMResult = "digests signatures OK"
	RPMDigestMismatch RPMResult = "digest mismatch"   // a header or payload digest is BAD: the bytes changed after signing
	RPMUnknownKey     RPMResult = "unknown key"       // signed, by a key not in the scratch rpmdb (NOKEY)
	RPMBadSignature   RPMResult = "bad signature"     // the signature does not verify, the digests do
	RPMNotSigned      RPMResult = "missing signature" // no signature at all
	RPMFailed         RPMResult = "rpm failed"        // rpm could not read the package
)

// RPMVerdict classifies `rpm -Kv` output, most telling first: a digest
// mismatch (the package was changed), an unknown key, a bad signature, no
// signature; the reason quotes rpm's lines.
func RPMVerdict(out string) (RPMResult, string) {
	var digestBad, nokey, sigBad, sigOK, other []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		i := strings.LastIndex(l, ": ")
		if i < 0 {
			if l != "" && !strings.HasSuffix(l, ":") {
				other = append(other, l)
			}
			continue
		}
		what, verdict := l[:i], strings.TrimSpace(l[i+2:])
		isSig := strings.Contains(what, "Signature") || strings.Contains(what, "signature")
		isDigest := strings.Contains(strings.ToLower(what), "digest")
		switch {
		case isDigest && !strings.HasPrefix(verdict, "OK"):
			digestBad = append(digestBad, l)
		case isSig && strings.HasPrefix(verdict, "NOKEY"):
			nokey = append(nokey, l)
		case isSig && strings.HasPrefix(verdict, "OK"):
			sigOK = append(sigOK, l)
		case isSig:
			sigBad = append(sigBad, l)
		case strings.Contains(l, "error") || strings.Contains(l, "not an rpm"):
			other = append(other, l)
		}
	}
	switch {
	case len(digestBad) > 0:
		return RPMDigestMismatch, "rpm says the package's digests are bad (it was changed after it was signed): " + strings.Join(digestBad, "; ")
	case len(nokey) > 0:
		return RPMUnknownKey, "signed by a key other than the archive key: " + strings.Join(nokey, "; ")
	case len(sigBad) > 0:
		return RPMBadSignature, "rpm says the signature is bad: " + strings.Join(sigBad, "; ")
	case len(other) > 0 && len(sigOK) == 0:
		return RPMFailed, strings.Join(other, "; ")
	case len(sigOK) == 0:
		return RPMNotSigned, "rpm finds no signature (the package is unsigned)"
	}
	return RPMOK, strings.Join(sigOK, "; ")
}
