// Package sbom owns what a HaLVM release says about itself: the SPDX 2.3 and
// CycloneDX 1.5 SBOMs and the SLSA v1 provenance of each flavour, generated
// from the lock (pins/halvm.lock) and the run's ledger rather than from a
// scan; the consistency check that ties those documents back to the pins
// and the produced artifacts (Check); a structural SPDX 2.3 validator
// (ValidateSPDX); and the SHA256SUMS file over the release with its cosign
// blob signature and OpenPGP detached signature.
//
// Everything here is deterministic: the same lock, ledger and tree manifest
// give byte-identical documents. Timestamps come from SOURCE_DATE_EPOCH,
// the SPDX namespace and the CycloneDX serial number are derived from the
// documents' content, and every list is sorted.
package sbom
