package repos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/halvm/halvm-release/internal/pgp"
	"github.com/halvm/halvm-release/publish"
	"github.com/halvm/halvm-release/sbom"
)

// Files is the release-files publication under <Root>/files, served at
// <URL>/files: one directory per release (<version>-<release>/) holding
// SHA256SUMS with its OpenPGP (.asc) and cosign (.sig) signatures and every
// file it lists (SBOMs, provenance, ...). Earlier releases' directories are
// carried over. A publication verifies when every directory's SHA256SUMS is
// signed by the archive key and matches its files.
type Files struct {
	Config
	Release string // the directory the new files go to, e.g. 2.4.3-1
	Src     string // the directory holding SHA256SUMS and the files it lists
}

// FilesDir is the publish root of the release files.
func (c Config) FilesDir() string { return filepath.Join(c.Root, "files") }

func (f Files) Write(_ context.Context, dst, live string, names []string) error {
	if live != "" {
		ents, err := os.ReadDir(live)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.IsDir() && e.Name() != f.Release {
				if err := copyTree(filepath.Join(live, e.Name()), filepath.Join(dst, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	all := append([]string{sbom.SumsName, sbom.SumsOpenPGP, sbom.SumsCosign}, names...)
	for _, n := range all {
		b, err := os.ReadFile(filepath.Join(f.Src, n))
		if err != nil {
			return fmt.Errorf("release files: %w", err)
		}
		p := filepath.Join(dst, f.Release, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (f Files) Verify(dir string) error {
	kr, err := pgp.ReadKeyring(f.pub())
	if err != nil {
		return fmt.Errorf("release files: the archive public key: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() {
			return fmt.Errorf("release files: %s: only release directories belong at the top", e.Name())
		}
		rel := filepath.Join(dir, e.Name())
		sums, err := os.ReadFile(filepath.Join(rel, sbom.SumsName))
		if err != nil {
			return fmt.Errorf("release files %s: %w", e.Name(), err)
		}
		sig, err := os.ReadFile(filepath.Join(rel, sbom.SumsOpenPGP))
		if err != nil {
			return fmt.Errorf("release files %s: %w", e.Name(), err)
		}
		if _, err := kr.VerifyDetached(bytes.NewReader(sums), sig); err != nil {
			return fmt.Errorf("release files %s: %s is not signed by the archive key: %w", e.Name(), sbom.SumsName, err)
		}
		if err := sbom.VerifySums(rel, sums); err != nil {
			return fmt.Errorf("release files %s: %w", e.Name(), err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("release files: no release directory")
	}
	return nil
}

// PublishFiles publishes the release files listed in src/SHA256SUMS (plus
// SHA256SUMS and its signatures) as <URL>/files/<release>/, verified, and
// makes them live.
func PublishFiles(ctx context.Context, c Config, release, src string) (string, error) {
	sums, err := os.ReadFile(filepath.Join(src, sbom.SumsName))
	if err != nil {
		return "", fmt.Errorf("release files: %w", err)
	}
	parsed, err := sbom.ParseSums(sums)
	if err != nil {
		return "", err
	}
	var names []string
	for _, s := range parsed {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	if err := publish.PublicDir(c.Root); err != nil {
		return "", fmt.Errorf("release files: the publish root: %w", err)
	}
	f := Files{Config: c, Release: release, Src: src}
	return publish.Publish(ctx, c.FilesDir(), f, names, c.options("files"))
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}
