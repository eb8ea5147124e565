package sbom

import (
	"fmt"
	"path/filepath"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/pins"
)

// File names of a flavour's documents below the output directory.
func SPDXPath(flavour string) string       { return filepath.Join("sbom", flavour+".spdx.json") }
func CycloneDXPath(flavour string) string  { return filepath.Join("sbom", flavour+".cdx.json") }
func ProvenancePath(flavour string) string { return filepath.Join("sbom", flavour+".provenance.json") }

// WriteFlavour generates the flavour's three documents, writes them below
// outDir (SPDXPath, CycloneDXPath, ProvenancePath) and records them in the
// ledger as sbom-spdx, sbom-cyclonedx and provenance artifacts.
func WriteFlavour(outDir string, in Input, led *pipeline.Ledger) (Documents, error) {
	d, err := Generate(in)
	if err != nil {
		return Documents{}, err
	}
	for _, f := range []struct {
		rel  string
		data []byte
		kind pipeline.Kind
	}{{SPDXPath(in.Flavour), d.SPDX, pipeline.KindSPDX}, {CycloneDXPath(in.Flavour), d.CycloneDX, pipeline.KindCycloneDX}, {ProvenancePath(in.Flavour), d.Provenance, pipeline.KindProvenance}} {
		p := filepath.Join(outDir, f.rel)
		if err := fsutil.WriteFileAtomic(p, f.data, 0o644); err != nil {
			return Documents{}, fmt.Errorf("writing %s: %w", f.rel, err)
		}
		if led != nil {
			if _, err := led.AddFile(f.kind, filepath.Base(f.rel), in.Flavour, p, f.rel); err != nil {
				return Documents{}, err
			}
		}
	}
	return d, nil
}

// LockPath is where the release files carry the lock they were built
// from, in its canonical encoding (pins.Bytes): its sha256 is the lock
// digest the SBOMs and the provenance name, so anyone holding the release
// can rebuild it from exactly that lock.
const LockPath = "lock/halvm.lock"

// WriteLock writes the lock into the release files and records it.
func WriteLock(outDir string, lock *pins.Lock, led *pipeline.Ledger) error {
	p := filepath.Join(outDir, LockPath)
	if err := fsutil.WriteFileAtomic(p, pins.Bytes(lock), 0o644); err != nil {
		return fmt.Errorf("writing the lock into the release files: %w", err)
	}
	if led != nil {
		if _, err := led.AddFile(pipeline.KindLock, filepath.Base(LockPath), "", p, LockPath); err != nil {
			return err
		}
	}
	return nil
}
