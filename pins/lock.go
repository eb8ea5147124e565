// Package pins owns the lock file (pins/halvm.lock): the one document that
// pins every input of a HaLVM release exactly — the superproject and every
// submodule commit, fetched files by size and sha256, Debian packages by
// version and sha256, the flavours and their configure flags, URL rewrites
// for dead upstream hosts, and SOURCE_DATE_EPOCH.
//
// The format is TOML in one canonical form: Load then Encode reproduces the
// file byte for byte. Loading is strict and reports every problem at once,
// each with its location.
package pins

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Format is the lock format version this package reads and writes.
const Format = 1

// Lock is a parsed, validated lock file.
type Lock struct {
	Release  Release
	Flavours []Flavour
	Rewrites []Rewrite
	Sources  []Source
	Excluded []Excluded
	Files    []File
	Debs     []Deb
}

// Release describes what is released.
type Release struct {
	Name            string // "HaLVM"
	Version         string // "2.4.3"
	SourceDateEpoch int64  // seconds; the superproject commit time
	EpochNote       string // where the epoch comes from
	Homepage        string
	License         string // SPDX identifier
	Suite           string // Debian suite of the build environment, e.g. "bookworm"
}

// Epoch returns SourceDateEpoch as a UTC time.
func (r Release) Epoch() time.Time { return time.Unix(r.SourceDateEpoch, 0).UTC() }

// Flavour is one toolchain build.
type Flavour struct {
	Name           string   // "halvm", "halvm-gmp"
	IntegerLibrary string   // "integer-simple", "integer-gmp"
	ConfigureFlags []string // extra ./configure flags of the HaLVM superproject
	Description    string
}

// Rewrite maps a dead URL prefix to a working one, as `git config
// url.<To>.insteadOf <From>` does. The commit checks still apply.
type Rewrite struct {
	From string
	To   string
}

// Source is a git repository pinned at a commit: the superproject (Path ".")
// or a submodule at Path (relative to the superproject root) whose gitlink
// lives in the Parent source.
type Source struct {
	Name        string
	Path        string
	Parent      string // name of the source holding the gitlink; "" for the superproject
	UpstreamURL string // the URL as written in the parent's .gitmodules ("" for the superproject)
	URL         string // where it is fetched from
	Commit      string // 40 hex
	License     string // SPDX identifier, "" when unknown
	Note        string
}

// IsRoot reports whether s is the superproject.
func (s Source) IsRoot() bool { return s.Parent == "" }

// Excluded is a submodule the build does not need: listed, not dropped, so a
// gitlink found at Path is expected and not an error.
type Excluded struct {
	Path   string
	Commit string // the gitlink's commit when known ("" = any)
	Reason string
}

// File is a downloaded input (the bootstrap compiler bindist, tool tarballs)
// pinned by sha256 and size. A published sha256 can be pinned before the
// size is known (Size 0): every fetch checks the sha256, and the first
// verified fetch reports the size for pins:update to record.
type File struct {
	Name    string
	Role    string // "bootstrap-ghc", "tool"
	Version string
	URL     string
	Size    int64 // 0: not recorded yet (the sha256 still pins the bytes)
	SHA256  string
	Note    string // why this input, where its checksum was published
	// Pending, when not empty, says why Size/SHA256 are not known yet (no
	// published checksum). Such a lock passes pins:check with a warning, but
	// a release refuses it until pins:update records the values at a first
	// verified fetch.
	Pending string
}

// Deb is a Debian package pinned by version and sha256.
type Deb struct {
	Name    string
	Version string
	Arch    string
	Role    string // "build-env", "tool", "image-base", "image-deps", "xen-boot"
	// Archive is the Debian archive holding the file: "debian" or
	// "debian-security". The mirror serving it is the machine's choice
	// (apt's configuration); the sha256 pins the bytes.
	Archive  string
	Filename string // path below the archive root (pool/main/...)
	Size     int64
	SHA256   string
}

// Roles of pinned files and packages.
const (
	RoleBootstrapGHC = "bootstrap-ghc"
	RoleTool         = "tool"
	RoleBuildEnv     = "build-env"
	RoleImageBase    = "image-base" // the image's base layer: Essential + apt + ca-certificates
	RoleImageDeps    = "image-deps" // the image's dependency layer: the closure of the .deb's Depends
	RoleXenBoot      = "xen-boot"
)

// Root returns the superproject source.
func (l *Lock) Root() Source {
	for _, s := range l.Sources {
		if s.IsRoot() {
			return s
		}
	}
	return Source{}
}

// Source returns the source with the given name.
func (l *Lock) Source(name string) (Source, bool) {
	for _, s := range l.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return Source{}, false
}

// Children returns the sources whose gitlinks live in the named source,
// sorted by path.
func (l *Lock) Children(parent string) []Source {
	var out []Source
	for _, s := range l.Sources {
		if s.Parent == parent {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Flavour returns the named flavour.
func (l *Lock) Flavour(name string) (Flavour, bool) {
	for _, f := range l.Flavours {
		if f.Name == name {
			return f, true
		}
	}
	return Flavour{}, false
}

// File returns the pinned file of a role ("" matches any) and name.
func (l *Lock) File(name string) (File, bool) {
	for _, f := range l.Files {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

// DebsWithRole returns the pinned Debian packages of a role, sorted by name.
func (l *Lock) DebsWithRole(role string) []Deb {
	var out []Deb
	for _, d := range l.Debs {
		if d.Role == role {
			out = append(out, d)
		}
	}
	return out
}

// SizeKnown reports whether the file's size is recorded.
func (f File) SizeKnown() bool { return f.Size > 0 }

// Pending returns a line for every pin whose hashes are not known yet.
func (l *Lock) Pending() []string {
	var out []string
	for i, f := range l.Files {
		if f.Pending != "" {
			out = append(out, fmt.Sprintf("files[%d] (%s): %s (run `go run mage.go pins:update file:%s` on a networked machine)", i, f.Name, f.Pending, f.Name))
		}
	}
	return out
}

// RewriteURL applies the longest matching rewrite to u.
func (l *Lock) RewriteURL(u string) string { return rewrite(l.Rewrites, u) }

func rewrite(rws []Rewrite, u string) string {
	best := -1
	for i, r := range rws {
		if strings.HasPrefix(u, r.From) && (best < 0 || len(r.From) > len(rws[best].From)) {
			best = i
		}
	}
	if best < 0 {
		return u
	}
	return rws[best].To + strings.TrimPrefix(u, rws[best].From)
}

// RelPath is a submodule's path relative to its parent's checkout.
func (l *Lock) RelPath(s Source) string {
	p, ok := l.Source(s.Parent)
	if !ok || p.Path == "." {
		return s.Path
	}
	return strings.TrimPrefix(s.Path, p.Path+"/")
}
