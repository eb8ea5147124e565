package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/halvm/halvm-release/internal/config"
	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/sources"
	"github.com/halvm/halvm-release/verify/checks"
	"github.com/halvm/halvm-release/verify/remote"
	"github.com/halvm/halvm-release/verify/signed"
	"github.com/halvm/halvm-release/verify/vsa"
)

// Names of what RebuildFromURL writes into its output directory.
const (
	RemoteReportName  = "rebuild-report.txt"
	RemoteSummaryName = "rebuild.vsa.json"
	remoteRebuildDir  = "rebuild"
)

// RebuildFromURL checks a published release from its URL alone (`go run
// mage.go rebuild <URL>`), with public keys only: it fetches the release
// (verify/remote: the published keyring accepted by the fingerprint c
// gives, SHA256SUMS and its signatures, the lock; refused before any build
// when they do not verify), rebuilds it from the lock with the same
// Rebuild verify's reproducibility check runs (a separate process without
// network, another build root, umask, TZ, locale, USER, HOME; no private
// key: it reuses the published signatures where they verify over its
// bytes) into <HALVM_OUT>/rebuild (or compares with the finished rebuild
// c.RebuildFrom), and judges every published artifact, IDENTICAL or
// DIFFERS. A lock naming inputs the rebuilder can neither find in its
// input cache nor fetch is refused before building: the report names each
// one and gives no verdict, and no summary is written. It writes <HALVM_OUT>/rebuild-report.txt and, with the
// rebuilder's own cosign key (HALVM_VSA_KEY_FILE), the signed SLSA
// verification summary <HALVM_OUT>/rebuild.vsa.json (one subject per
// artifact, PASSED or FAILED; written either way). It returns an error
// unless every artifact is IDENTICAL.
func RebuildFromURL(ctx context.Context, url string, c config.Remote, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	fprs, err := trustedFingerprints(c)
	if err != nil {
		return err
	}
	var cosignPub []byte
	if c.CosignPublicKeyFile != "" {
		if cosignPub, err = os.ReadFile(c.CosignPublicKeyFile); err != nil {
			return fmt.Errorf("HALVM_COSIGN_PUBLIC_KEY_FILE: %w", err)
		}
	}
	var sv signature.SignerVerifier
	if c.VSAKey.KeyFile != "" {
		// The rebuilder's key is checked before anything is fetched or built.
		s, err := cosign.LoadSigner(c.VSAKey)
		if err != nil {
			return fmt.Errorf("the rebuilder's key (HALVM_VSA_KEY_FILE): %w", err)
		}
		sv = s
	}
	if c.MirrorErr != nil {
		return c.MirrorErr
	}
	out := c.OutDir
	dl := filepath.Join(out, "published")
	// No earlier run's report or summary stays to be read as this one's.
	for _, p := range []string{dl, filepath.Join(out, RemoteReportName), filepath.Join(out, RemoteSummaryName)} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	r, err := remote.Fetch(ctx, remote.Options{URL: url, Fingerprints: fprs, CosignKey: cosignPub, Dir: dl, Log: log})
	if err != nil {
		return err
	}
	cfg, lock, err := c.Plan(r.Lock, r.Release)
	if err != nil {
		return fmt.Errorf("the published lock %s: %w", r.Lock, err)
	}
	plan, err := pipeline.NewPlan(cfg)
	if err != nil {
		return err
	}
	rebuilt := filepath.Join(out, remoteRebuildDir)
	if c.RebuildFrom != "" {
		rebuilt = absPath(c.RebuildFrom)
		fmt.Fprintf(log, "rebuild: comparing with the finished rebuild %s (%s)\n", rebuilt, config.RebuildFromVar)
	} else {
		if err := os.RemoveAll(rebuilt); err != nil {
			return err
		}
		scratch := filepath.Join(out, "scratch")
		if err := os.RemoveAll(scratch); err != nil {
			return err
		}
		v := checks.DefaultVariation(scratch)
		var from checks.Publications
		from.ArchiveKey = r.Keyring
		for _, d := range []string{r.Apt, r.Dnf} {
			if d != "" {
				from.Signed = append(from.Signed, d)
			}
		}
		o := Options{Lock: lock, RepoURL: r.Base, Sources: sources.Options{MirrorDir: c.Mirror.Dir, MirrorMap: c.Mirror.Map}}
		fmt.Fprintf(log, "rebuild: rebuilding %s from its lock into %s (%s)\n", url, rebuilt, v.Describe())
		start := time.Now()
		if err := Rebuild(ctx, plan, o, rebuilt, v, from); err != nil {
			var ue *UnreachableInputsError
			if errors.As(err, &ue) {
				// Every artifact depends on the inputs: no verdict, and
				// no summary (one without a verdict would be read as one).
				report := []byte(fmt.Sprintf("rebuild of %s/files/%s/: NOT CHECKED, no verdict for any artifact\n%s\n", r.Base, r.ID, err))
				if werr := fsutil.WriteFileAtomic(filepath.Join(out, RemoteReportName), report, 0o644); werr != nil {
					return errors.Join(err, werr)
				}
				_, _ = log.Write(report)
			}
			return err
		}
		fmt.Fprintf(log, "rebuild: rebuilt in %s\n", time.Since(start).Round(time.Second))
	}
	b, err := remote.ReadRebuilt(rebuilt)
	if err != nil {
		return err
	}
	keys := signed.Keys{Archive: r.Keyring}
	if cosignPub != nil {
		keys.CosignBlob = func(data, sig []byte) error { return cosign.VerifyBlob(cosignPub, data, sig) }
	}
	as := remote.Compare(ctx, r, b, keys, c.Registry)
	report := remote.Report(r, as)
	if err := fsutil.WriteFileAtomic(filepath.Join(out, RemoteReportName), report, 0o644); err != nil {
		return err
	}
	_, _ = log.Write(report)
	var verr error
	if !remote.Passed(as) {
		verr = fmt.Errorf("the rebuild of %s differs from what is published: see %s", url, filepath.Join(out, RemoteReportName))
	}
	if sv == nil {
		fmt.Fprintln(log, "rebuild: no verification summary written: set HALVM_VSA_KEY_FILE (and HALVM_VSA_PASSWORD_FILE) to sign one with your own cosign key")
		return verr
	}
	in := remote.Summary(vsa.Input{VerifierID: c.VerifierID, TimeVerified: time.Now().UTC().Truncate(time.Second),
		PolicyURI: "https://github.com/halvm/halvm-release/blob/main/README.md#verify-a-release-yourself"}, r, as)
	st, err := vsa.Statement(in)
	if err != nil {
		return errors.Join(verr, err)
	}
	envelope, err := vsa.Sign(st, sv)
	if err != nil {
		return errors.Join(verr, err)
	}
	p := filepath.Join(out, RemoteSummaryName)
	if err := fsutil.WriteFileAtomic(p, envelope, 0o644); err != nil {
		return errors.Join(verr, err)
	}
	fmt.Fprintf(log, "rebuild: verification summary (SLSA VSA, %s): %s\n  check it: cosign verify-blob-attestation --key <your public key> --insecure-ignore-tlog --type %s --signature %s %s\n",
		map[bool]string{true: vsa.Passed, false: vsa.Failed}[verr == nil], p, vsa.PredicateType, p, filepath.Join(r.Files, "SHA256SUMS"))
	return verr
}

// trustedFingerprints are the archive key fingerprints c trusts: the one
// given, else the pinned public key's.
func trustedFingerprints(c config.Remote) ([]string, error) {
	if c.Fingerprint != "" {
		return []string{remote.NormalizeFingerprint(c.Fingerprint)}, nil
	}
	if c.ArchivePublicKeyFile == "" {
		return nil, errors.New("no archive key to trust: set HALVM_PGP_FINGERPRINT to the release's archive key fingerprint, or HALVM_PGP_PUBLIC_KEY_FILE to its pinned public key")
	}
	b, err := os.ReadFile(c.ArchivePublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("HALVM_PGP_PUBLIC_KEY_FILE: %w", err)
	}
	kr, err := pgp.ReadKeyring(b)
	if err != nil {
		return nil, fmt.Errorf("HALVM_PGP_PUBLIC_KEY_FILE=%s: %w", c.ArchivePublicKeyFile, err)
	}
	return kr.Fingerprints(), nil
}
