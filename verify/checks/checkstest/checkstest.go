// Package checkstest builds a small synthetic release in seconds for the
// verification suite's tests: the release's own packaging, sbom, repos,
// sign and publish code run over fake toolchain trees
// (packaging/packagingtest), so the tree has what a real release's has —
// halvm, halvm-gmp and halvm-archive-keyring as signed .deb and .rpm, tree
// manifests, SPDX, CycloneDX and provenance documents, the lock, signed apt
// and dnf publications (live, with the release files beside them), a
// SHA256SUMS signed with gpg and cosign, and dist/ledger.json — signed
// with freshly made development keys (internal/devkeys).
//
// It builds no image and no real toolchain: the ledger records the image
// stage as skipped, and the image, boot and rebuild checks are exercised
// on copies of the one full demo release (release's TestDemo).
package checkstest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/halvm/halvm-release/internal/devkeys"
	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/packaging"
	"github.com/halvm/halvm-release/packaging/packagingtest"
	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/repos"
	"github.com/halvm/halvm-release/sbom"
	"github.com/halvm/halvm-release/toolchain"
	"github.com/halvm/halvm-release/toolchain/testprog"
)

// RepoURL is where the fixture's repositories say they are served.
const RepoURL = "http://127.0.0.1:8619"

// ImageSkipped is why the fixture's ledger records the image stage as
// skipped.
const ImageSkipped = "the synthetic test release builds no image"

// Release is a built synthetic release.
type Release struct {
	Dist  string        // the release directory: ledger.json, packages, SBOMs, SHA256SUMS; repos/ is its publish root
	Keys  devkeys.Files // the development keys it is signed with
	Lock  *pins.Lock    // the lock it records (dist/lock/halvm.lock)
	Taken time.Duration // how long Build took
}

// Build writes a synthetic release of lock's version, with every flavour,
// into dir/dist (dir/work and dir/keys hold the trees and the keys).
func Build(ctx context.Context, dir string, lock *pins.Lock) (*Release, error) {
	start := time.Now()
	dist := filepath.Join(dir, "dist")
	work := filepath.Join(dir, "work")
	epoch := lock.Release.Epoch()
	keys, err := devkeys.Ensure(filepath.Join(dir, "keys"), epoch)
	if err != nil {
		return nil, err
	}
	lockPath := filepath.Join(work, "halvm.lock")
	if err := fsutil.WriteFileAtomic(lockPath, pins.Bytes(lock), 0o644); err != nil {
		return nil, err
	}
	p, err := pipeline.NewPlan(pipeline.Config{Version: lock.Release.Version, Release: 1, Epoch: epoch, LockPath: lockPath,
		OutDir: dist, CacheDir: filepath.Join(dir, "cache"), WorkDir: work, Skip: map[string]string{"image": ImageSkipped}})
	if err != nil {
		return nil, err
	}
	var l pipeline.Ledger
	// The toolchain stage: a fake installed tree per flavour and format,
	// the Debian layout's manifest in the ledger.
	trees := map[string]map[packaging.Format]packaging.Tree{}
	for _, fl := range p.Flavours() {
		trees[fl] = map[packaging.Format]packaging.Tree{}
		for _, f := range packaging.Formats {
			lay := packaging.Layouts[f]
			root := filepath.Join(work, "trees", fl, string(f))
			if err := packagingtest.WriteTree(root, lay.Prefix, lay.HaLVMLibdir(p.Version()), p.Version(), fl); err != nil {
				return nil, fmt.Errorf("writing the fake %s tree %s: %w", fl, root, err)
			}
			trees[fl][f] = packaging.Tree{Root: root, Prefix: lay.Prefix, Libdir: lay.Libdir}
		}
		if err := manifest(p, &l, fl, trees[fl][packaging.Deb].Root); err != nil {
			return nil, err
		}
	}
	// The packages stage, with the project's verification programs.
	hello := filepath.Join(work, "verify-programs")
	for _, name := range []string{testprog.Hello, testprog.Null} {
		if err := fsutil.WriteFileAtomic(filepath.Join(hello, name), testprog.Source(name), 0o644); err != nil {
			return nil, err
		}
	}
	if err := packaging.BuildAll(ctx, p, packaging.Inputs{Trees: trees, Hello: hello, Key: keys.PGPSource()}, &l); err != nil {
		return nil, err
	}
	// The sbom stage.
	if err := sbom.WriteLock(dist, lock, &l); err != nil {
		return nil, err
	}
	for _, fl := range p.Flavours() {
		m := l.Find(pipeline.KindTreeManifest, fl)
		tree, err := sbom.ReadTree(filepath.Join(dist, m[0].Path))
		if err != nil {
			return nil, err
		}
		if _, err := sbom.WriteFlavour(dist, sbom.Input{Lock: lock, Flavour: fl, Artifacts: l.Artifacts(), Tree: tree}, &l); err != nil {
			return nil, fmt.Errorf("SBOM of %s: %w", fl, err)
		}
	}
	l.RecordStage(pipeline.StageRecord{Name: "image", Status: pipeline.Skipped, Reason: ImageSkipped})
	// The repos stage.
	key, err := pgp.LoadKey(keys.PGPSource())
	if err != nil {
		return nil, err
	}
	rc := repos.Config{Root: filepath.Join(dist, "repos"), URL: RepoURL, Key: key, Epoch: epoch, Version: p.Version()}
	var debs, rpms []string
	for _, a := range l.Find(pipeline.KindDeb, "") {
		debs = append(debs, filepath.Join(dist, a.Path))
	}
	for _, a := range l.Find(pipeline.KindRPM, "") {
		rpms = append(rpms, filepath.Join(dist, a.Path))
	}
	staged, err := repos.Prepare(ctx, rc, debs, rpms)
	if err != nil {
		return nil, err
	}
	pubs, err := rc.StagedArtifacts(staged)
	if err != nil {
		return nil, err
	}
	for _, a := range pubs {
		l.Add(a)
	}
	// The sign stage: SHA256SUMS over the release files.
	sv, err := cosign.LoadSigner(keys.CosignSource())
	if err != nil {
		return nil, err
	}
	var names []string
	for _, k := range []pipeline.Kind{pipeline.KindDeb, pipeline.KindRPM, pipeline.KindSPDX, pipeline.KindCycloneDX, pipeline.KindProvenance, pipeline.KindLock} {
		for _, a := range l.Find(k, "") {
			names = append(names, a.Path)
		}
	}
	sort.Strings(names)
	if _, err := sbom.WriteSignedSums(dist, names, sv, key, epoch, &l); err != nil {
		return nil, err
	}
	// The publish stage: the publications go live, the release files
	// beside them.
	if err := repos.Activate(rc, staged); err != nil {
		return nil, err
	}
	if _, err := repos.PublishFiles(ctx, rc, p.PackageVersion(), dist); err != nil {
		return nil, err
	}
	if err := l.WriteFile(p.LedgerPath()); err != nil {
		return nil, err
	}
	return &Release{Dist: dist, Keys: keys, Lock: lock, Taken: time.Since(start)}, nil
}

// manifest writes the tree manifest of flavour's tree at root, as the
// toolchain stage does, and records it.
func manifest(p pipeline.Plan, l *pipeline.Ledger, flavour, root string) error {
	f, err := os.CreateTemp(p.WorkDir(), "manifest-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	fmt.Fprintf(f, "# HaLVM %s toolchain tree, flavour %s (synthetic, for tests)\n", p.Version(), flavour)
	if err := toolchain.WriteManifest(f, os.DirFS(root)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return err
	}
	res := &toolchain.Result{Flavour: flavour, Manifest: filepath.Join(p.OutDir(), "toolchain", "toolchain-"+flavour+".manifest")}
	if err := fsutil.WriteFileAtomic(res.Manifest, b, 0o644); err != nil {
		return err
	}
	return res.Record(l, p.OutDir())
}
