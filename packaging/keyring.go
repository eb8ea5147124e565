package packaging

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// Keyring is the halvm-archive-keyring package: the repository's public key
// at AptKeyring (binary keyring, a conffile) in the deb and at RPMKey
// (armored, %config) in the rpm, so that a key rotation reaches users
// through the package manager. Its public key is Options.Key's.
type Keyring struct {
	Version string    // the package version, normally the release's ("2.4.3")
	Release int       // bump it when the key rotates
	Epoch   time.Time // SOURCE_DATE_EPOCH
}

// BuildKeyring writes the keyring package in format f into outDir and
// returns its path. A development key is named as such in the synopsis and
// the description.
func BuildKeyring(ctx context.Context, f Format, kr Keyring, o Options, outDir string) (string, error) {
	problems := checkCommon(f, kr.Version, kr.Release, kr.Epoch)
	if o.Key == nil {
		problems = append(problems, "no signing key: load one with pgp.LoadKey (or generate a development key)")
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("building %s package %s: %s", f, KeyringName, strings.Join(problems, "; "))
	}
	tmp, err := os.MkdirTemp("", "halvm-packaging-gen-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)

	summary := "OpenPGP key of the HaLVM package repositories"
	var dev string
	if o.Key.IsDevelopment() {
		summary += " (DEVELOPMENT KEY)"
		dev = "DEVELOPMENT KEY: this key signs development and snapshot builds only; it is not the HaLVM release key. Do not install it on machines that should trust only official releases."
	}
	s := &spec{
		name:        KeyringName,
		version:     kr.Version,
		release:     kr.Release,
		epoch:       kr.Epoch,
		independent: true,
		summary:     summary,
		section:     "misc",
		group:       "System Environment/Base",
		only:        map[string]Format{},
		config:      map[string]bool{AptKeyring: true, RPMKey: true},
		scripts:     map[Format]scripts{},
		description: description(summary,
			"This package installs the public key that signs the HaLVM apt and dnf repositories and "+
				"packages ("+AptKeyring+" for apt, "+RPMKey+" for rpm), so that a key rotation reaches "+
				"users through the package manager. Key fingerprint: "+o.Key.Fingerprint()+".",
			dev),
	}
	doc := "/usr/share/doc/" + KeyringName
	changelog, err := changelogGz(KeyringName, kr.Version, kr.Release, kr.Epoch)
	if err != nil {
		return "", fmt.Errorf("building %s package %s: %w", f, KeyringName, err)
	}
	gens := []generated{
		{dest: AptKeyring, data: o.Key.PublicBinary(), only: Deb},
		{dest: RPMKey, data: o.Key.PublicArmored(), only: RPM},
		{dest: doc + "/copyright", data: copyright(bsd3), only: Deb},
		{dest: "/usr/share/lintian/overrides/" + KeyringName, data: []byte(overrides(KeyringName, keyringOverrides)), only: Deb},
		{dest: doc + "/changelog.Debian.gz", data: changelog, only: Deb},
	}
	if err := s.addGenerated(tmp, gens); err != nil {
		return "", fmt.Errorf("building %s package %s: %w", f, KeyringName, err)
	}
	return s.build(ctx, f, o, outDir)
}
