package sbom

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/halvm/halvm-release/internal/fsutil"
)

// SumsName is the checksum file of a release; SumsName+".sig" is its cosign
// blob signature and SumsName+".asc" its armored OpenPGP signature.
const (
	SumsName    = "SHA256SUMS"
	SumsCosign  = SumsName + ".sig"
	SumsOpenPGP = SumsName + ".asc"
)

// Sum is one line of SHA256SUMS.
type Sum struct {
	Name   string // slash-separated path relative to the release directory
	SHA256 string
}

var sumLineRE = regexp.MustCompile(`^([0-9a-f]{64})  ([^\n\\]+)$`)

func checkSumName(n string) error {
	if n == "" || strings.ContainsAny(n, "\n\r\\") || path.IsAbs(n) || path.Clean(n) != n || n == "." || strings.HasPrefix(n, "../") {
		return fmt.Errorf("file name %q cannot go into %s: want a clean relative path without newlines or backslashes", n, SumsName)
	}
	return nil
}

// FormatSums renders SHA256SUMS in GNU coreutils format ("<hex>  <name>",
// binary-mode two spaces), sorted by name, so `sha256sum -c` reads it.
func FormatSums(sums []Sum) ([]byte, error) {
	s := append([]Sum(nil), sums...)
	sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name })
	var errs []error
	var b bytes.Buffer
	for i, x := range s {
		if err := checkSumName(x.Name); err != nil {
			errs = append(errs, err)
		}
		if !hex64RE.MatchString(x.SHA256) {
			errs = append(errs, fmt.Errorf("%s: sha256 %q is not 64 lower-case hex characters", x.Name, x.SHA256))
		}
		if i > 0 && s[i-1].Name == x.Name {
			errs = append(errs, fmt.Errorf("%s is listed twice", x.Name))
		}
		fmt.Fprintf(&b, "%s  %s\n", x.SHA256, x.Name)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("formatting %s: %w", SumsName, errors.Join(errs...))
	}
	return b.Bytes(), nil
}

// ParseSums reads a SHA256SUMS file, reporting every malformed line.
func ParseSums(data []byte) ([]Sum, error) {
	var out []Sum
	var errs []error
	lines := strings.Split(string(data), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, line := range lines {
		m := sumLineRE.FindStringSubmatch(line)
		if m == nil {
			errs = append(errs, fmt.Errorf("line %d: want \"<64 hex>  <name>\", got %q", i+1, line))
			continue
		}
		out = append(out, Sum{Name: m[2], SHA256: m[1]})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("parsing %s: %w", SumsName, errors.Join(errs...))
	}
	return out, nil
}

// SumFiles hashes the named files below dir.
func SumFiles(dir string, names []string) ([]Sum, error) {
	var out []Sum
	var errs []error
	for _, n := range names {
		if err := checkSumName(n); err != nil {
			errs = append(errs, err)
			continue
		}
		_, sum, err := fsutil.HashFile(filepath.Join(dir, filepath.FromSlash(n)))
		if err != nil {
			errs = append(errs, fmt.Errorf("hashing %s: %w", n, err))
			continue
		}
		out = append(out, Sum{Name: n, SHA256: sum})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// VerifySums re-hashes every file listed in a SHA256SUMS file below dir and
// reports each one that is missing or differs.
func VerifySums(dir string, data []byte) error {
	sums, err := ParseSums(data)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range sums {
		_, got, err := fsutil.HashFile(filepath.Join(dir, filepath.FromSlash(s.Name)))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
		case got != s.SHA256:
			errs = append(errs, fmt.Errorf("%s: sha256 is %s, %s says %s", s.Name, got, SumsName, s.SHA256))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("verifying %s: %w", SumsName, errors.Join(errs...))
	}
	return nil
}
