package checks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/oci/cosign"
	"github.com/halvm/halvm-release/publish"
	"github.com/halvm/halvm-release/repos"
	"github.com/halvm/halvm-release/sbom"
	"github.com/halvm/halvm-release/verify"
)

// Names of the served-tree checks (run by `go run mage.go verify` on a
// published release: Config.ServedRoot set).
const (
	CheckServedPublications = "served-publications"
	CheckServedFiles        = "served-files"
)

// ServedPublication is the publication the `current` link under root (a
// repository's publish root: <root>/current -> publications/<name>)
// points at, what users are served. A link that leads anywhere else is
// refused.
func ServedPublication(root string) (string, error) {
	link := filepath.Join(root, "current")
	target, err := os.Readlink(link)
	if err != nil {
		return "", fmt.Errorf("%s: %w (nothing is published there)", link, err)
	}
	t := filepath.ToSlash(target)
	dir, name := path.Split(t)
	if dir != "publications/" || name == "" || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("%s points at %q: want publications/<name> (a complete publication beside it)", link, target)
	}
	p := filepath.Join(root, "publications", name)
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s points at %s, which is not a publication directory", link, p)
	}
	return p, nil
}

func servedChecks(c Config) []verify.Check {
	if c.ServedRoot == "" {
		return nil
	}
	return []verify.Check{
		{
			Name: CheckServedPublications, Family: verify.Consistency, Required: true,
			Doc: "in both repositories `current` points at a publication whose signed date (Release Date, repomd revision) is later than every other publication's and not older than the one this release made: no rollback, replay or freeze is served",
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				return servedPublications(env, c.ServedRoot)
			},
		},
		{
			Name: CheckServedFiles, Family: verify.Consistency, Required: c.requiredUnless("sign"),
			Doc:   "every file under files/current/<version>/ is listed in that folder's SHA256SUMS, signed with OpenPGP (gpgv) and cosign by the pinned keys, with no unlisted file; its packages are byte-identical to the served pools; its SBOMs agree with the lock",
			Needs: []verify.Prereq{verify.NeedCommand("gpgv", "gpgv"), c.stageRan("sign")},
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				return servedFiles(ctx, env, c)
			},
		},
	}
}

// publicationOrder checks one repository's publications: current is the
// newest by sequence and by its signed date, and dates increase along the
// sequence. It returns the served publication.
func publicationOrder(root, repo string, dateOf func(string) (time.Time, error), ledgerPub string) (string, []string, error) {
	cur, err := ServedPublication(root)
	if err != nil {
		return "", nil, err
	}
	names, err := publish.Served(root)
	if err != nil {
		return "", nil, err
	}
	var details []string
	var errs []error
	dates := map[string]time.Time{}
	for _, n := range names {
		d, err := dateOf(filepath.Join(root, "publications", n))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s publication %s: %w", repo, n, err))
			continue
		}
		dates[n] = d
	}
	curName := filepath.Base(cur)
	curDate, ok := dates[curName]
	if !ok {
		return cur, details, fmt.Errorf("%s: the served publication %s has no readable date:\n%w", repo, cur, errors.Join(errs...))
	}
	details = append(details, fmt.Sprintf("%s: current -> %s (date %s) of %d publications", repo, curName, curDate.Format(time.RFC3339), len(names)))
	for i, n := range names {
		d, ok := dates[n]
		if !ok {
			continue
		}
		if n != curName && !d.Before(curDate) {
			errs = append(errs, fmt.Errorf("%s: current (%s, dated %s) is older than publication %s (dated %s) in %s: users are served an older publication (a rollback, a replay or a freeze); publish again or point current at the newest",
				repo, curName, curDate.Format(time.RFC3339), n, d.Format(time.RFC3339), filepath.Join(root, "publications")))
		}
		if i > 0 {
			if p, ok := dates[names[i-1]]; ok && !d.After(p) {
				errs = append(errs, fmt.Errorf("%s: publication %s (dated %s) is not later than the one before it, %s (dated %s): publication dates must increase",
					repo, n, d.Format(time.RFC3339), names[i-1], p.Format(time.RFC3339)))
			}
		}
	}
	if ledgerPub != "" && ledgerPub != curName {
		if d, ok := dates[ledgerPub]; ok && d.After(curDate) {
			errs = append(errs, fmt.Errorf("%s: current (%s) is older than the publication %s this release made", repo, curName, ledgerPub))
		} else if !ok {
			details = append(details, fmt.Sprintf("%s: the ledger's publication %s is no longer beside current (pruned)", repo, ledgerPub))
		}
	}
	if len(errs) > 0 {
		return cur, details, errors.Join(errs...)
	}
	return cur, details, nil
}

func servedPublications(env *verify.Env, root string) (verify.Evidence, error) {
	var ev verify.Evidence
	var errs []error
	for _, r := range []struct {
		name   string
		kind   pipeline.Kind
		dateOf func(string) (time.Time, error)
	}{{"apt", pipeline.KindAptRepo, repos.AptDate}, {"dnf", pipeline.KindDnfRepo, repos.DnfDate}} {
		ledgerPub := ""
		if env.Ledger != nil {
			if as := env.Ledger.Find(r.kind, ""); len(as) == 1 {
				ledgerPub = path.Base(as[0].Path)
			}
		}
		_, d, err := publicationOrder(filepath.Join(root, r.name), r.name, r.dateOf, ledgerPub)
		ev.Details = append(ev.Details, d...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ev.Checked++
	}
	if len(errs) > 0 {
		return ev, fmt.Errorf("the served publications under %s are not the newest:\n%w", root, errors.Join(errs...))
	}
	ev.Summary = fmt.Sprintf("apt and dnf under %s serve their newest publication (current's signed date is later than every other's)", root)
	return ev, nil
}

// servedFiles verifies the files area as users download it.
func servedFiles(ctx context.Context, env *verify.Env, c Config) (verify.Evidence, error) {
	cur, err := ServedPublication(filepath.Join(c.ServedRoot, "files"))
	if err != nil {
		return verify.Evidence{}, err
	}
	ents, err := os.ReadDir(cur)
	if err != nil {
		return verify.Evidence{}, err
	}
	pools := map[string]string{} // package file name -> path in a served pool
	for _, d := range []string{c.AptDir, c.DnfDir} {
		if d == "" {
			continue
		}
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() && (strings.HasSuffix(p, ".deb") || strings.HasSuffix(p, ".rpm")) {
				pools[e.Name()] = p
			}
			return nil
		})
	}
	var ev verify.Evidence
	var errs []error
	versions := 0
	for _, e := range ents {
		p := filepath.Join(cur, e.Name())
		if !e.IsDir() {
			errs = append(errs, fmt.Errorf("%s: an unlisted file at the top of the files area (only <version>/ directories belong there)", p))
			continue
		}
		versions++
		n, det, err := servedVersion(ctx, env, c, p, pools)
		ev.Checked += n
		ev.Details = append(ev.Details, det...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if versions == 0 {
		errs = append(errs, fmt.Errorf("%s holds no release directory", cur))
	}
	if c.Lock == nil {
		errs = append(errs, errors.New("no lock given: the served SBOMs are checked against the lock (HALVM_LOCK)"))
	} else {
		found := false
		for _, e := range ents {
			found = found || e.IsDir() && isLockRelease(c, e.Name())
		}
		if !found {
			errs = append(errs, fmt.Errorf("%s holds no release directory of the lock's version %s (<version>-<release>/): the release this lock makes is not served", cur, c.Lock.Release.Version))
		}
	}
	if len(errs) > 0 {
		return ev, fmt.Errorf("the files area %s does not verify:\n%w", cur, errors.Join(errs...))
	}
	ev.Summary = fmt.Sprintf("%d release %s under %s: %d files signed (SHA256SUMS by OpenPGP and cosign), none unlisted, packages identical to the pools, SBOMs agree with the lock",
		versions, plural(versions, "directory", "directories"), cur, ev.Checked)
	return ev, nil
}

// servedVersion verifies one files/current/<version>/ directory.
func servedVersion(ctx context.Context, env *verify.Env, c Config, dir string, pools map[string]string) (int, []string, error) {
	var errs []error
	var details []string
	sumsPath := filepath.Join(dir, sbom.SumsName)
	data, err := os.ReadFile(sumsPath)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", sumsPath, err)
	}
	fpr, err := gpgvVerify(ctx, env.Scratch, c.ArchiveKey, filepath.Join(dir, sbom.SumsOpenPGP), sumsPath)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", sumsPath, err))
	} else {
		details = append(details, filepath.Join(dir, sbom.SumsOpenPGP)+": good signature by "+fpr)
	}
	sig, err := os.ReadFile(filepath.Join(dir, sbom.SumsCosign))
	if err == nil {
		err = cosign.VerifyBlob(c.CosignKey, data, sig)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w (verified with the pinned cosign public key)", filepath.Join(dir, sbom.SumsCosign), err))
	}
	if len(errs) > 0 {
		// Nothing below an unsigned SHA256SUMS is evidence.
		return 0, details, errors.Join(errs...)
	}
	list, err := sbom.ParseSums(data)
	if err != nil {
		return 0, details, fmt.Errorf("%s: %w", sumsPath, err)
	}
	if err := sbom.VerifySums(dir, data); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", dir, err))
	}
	listed := map[string]bool{sbom.SumsName: true, sbom.SumsOpenPGP: true, sbom.SumsCosign: true}
	for _, s := range list {
		listed[s.Name] = true
	}
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if e.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if !listed[filepath.ToSlash(rel)] {
			errs = append(errs, fmt.Errorf("%s: not listed in the signed %s (an unlisted file is served)", p, sumsPath))
		}
		return nil
	})
	n := len(list)
	// Packages: byte-identical to the served pools. What the signed list
	// names (packages, the image tarball) is what the SBOMs must describe.
	var products []pipeline.Artifact
	for _, s := range list {
		base := path.Base(s.Name)
		p := filepath.Join(dir, filepath.FromSlash(s.Name))
		isDeb, isRPM := strings.HasSuffix(base, ".deb"), strings.HasSuffix(base, ".rpm")
		if strings.HasSuffix(base, ".tar") {
			if fi, err := os.Stat(p); err == nil {
				products = append(products, pipeline.Artifact{Kind: pipeline.KindOCILayout, Name: base, Path: s.Name, Size: fi.Size(), SHA256: s.SHA256})
			}
			continue
		}
		if !isDeb && !isRPM {
			continue
		}
		pool, ok := pools[base]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no package of that name in the served repositories", p))
			continue
		}
		size, sum, err := fsutil.HashFile(pool)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if sum != s.SHA256 {
			errs = append(errs, fmt.Errorf("%s (sha256 %s in the signed %s) differs from %s in the served pool (sha256 %s)", p, s.SHA256, sbom.SumsName, pool, sum))
			continue
		}
		kind := pipeline.KindDeb
		if isRPM {
			kind = pipeline.KindRPM
		}
		name := productName(base)
		a := pipeline.Artifact{Kind: kind, Name: name, Path: s.Name, Size: size, SHA256: sum}
		for _, fl := range c.Flavours {
			if fl == name {
				a.Flavour = fl
			}
		}
		products = append(products, a)
		details = append(details, fmt.Sprintf("%s: identical to %s", p, pool))
	}
	// SBOMs: against the lock (and the signed, served products), never
	// the ledger.
	if isLockRelease(c, filepath.Base(dir)) {
		for _, fl := range c.Flavours {
			k, err := servedSBOM(ctx, env, c, dir, fl, products)
			n += k
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return n, details, errors.Join(errs...)
	}
	return n, details, nil
}

// isLockRelease says whether a files directory (<version>-<release>) is
// of the lock's version.
func isLockRelease(c Config, dir string) bool {
	return c.Lock != nil && dir == c.Lock.Release.Version+"-"+releaseOf(dir) && releaseOf(dir) != ""
}

// releaseOf is the package release of a <version>-<release> directory.
func releaseOf(dir string) string {
	if i := strings.LastIndexByte(dir, '-'); i >= 0 {
		return dir[i+1:]
	}
	return ""
}

// servedSBOM checks one flavour's served SBOMs against the lock and the
// served products (with the flavour's images as the ledger records them:
// their digests are what the cosign signatures and attestations sign).
func servedSBOM(ctx context.Context, env *verify.Env, c Config, dir, fl string, products []pipeline.Artifact) (int, error) {
	docs := map[string][]byte{}
	for _, p := range []string{sbom.SPDXPath(fl), sbom.CycloneDXPath(fl), sbom.ProvenancePath(fl)} {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			return 0, fmt.Errorf("the served SBOMs of %s: %w", fl, err)
		}
		docs[p] = b
	}
	var l pipeline.Ledger
	for _, a := range products {
		if a.Flavour == fl || a.Flavour == "" {
			l.Add(a)
		}
	}
	if env.Ledger != nil {
		for _, a := range env.Ledger.Find(pipeline.KindOCIImage, "") {
			if a.Flavour == fl || a.Flavour == "" {
				l.Add(a)
			}
		}
	}
	var probs []string
	spdx, cdx, prov := docs[sbom.SPDXPath(fl)], docs[sbom.CycloneDXPath(fl)], docs[sbom.ProvenancePath(fl)]
	if err := sbom.ValidateCycloneDX(ctx, cdx); err != nil {
		probs = append(probs, "CycloneDX: "+err.Error())
	}
	for _, p := range sbom.Check(c.Lock, &l, spdx, cdx, prov) {
		probs = append(probs, p.Error())
	}
	if len(probs) > 0 {
		sort.Strings(probs)
		return 0, fmt.Errorf("the served SBOMs of %s in %s disagree with the lock: %d problem(s):\n%s", fl, filepath.Join(dir, "sbom"), len(probs), strings.Join(probs, "\n"))
	}
	return 3, nil
}

// productName is the package name of a package file
// (halvm_2.4.3-1_amd64.deb, halvm-gmp-2.4.3-1.x86_64.rpm).
func productName(base string) string {
	if i := strings.IndexByte(base, '_'); i > 0 && strings.HasSuffix(base, ".deb") {
		return base[:i]
	}
	if strings.HasSuffix(base, ".rpm") {
		// name-version-release.arch.rpm: the name is all before the
		// second-to-last '-'.
		s := strings.TrimSuffix(base, ".rpm")
		if i := strings.LastIndexByte(s, '-'); i > 0 {
			if j := strings.LastIndexByte(s[:i], '-'); j > 0 {
				return s[:j]
			}
		}
	}
	return ""
}
