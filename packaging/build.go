package packaging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"

	"github.com/halvm/halvm-release/internal/detgzip"
	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pgp"
)

// BuildHost is the fixed build host recorded in rpm headers.
const BuildHost = "halvm-release"

// Options are how packages are signed and compressed.
type Options struct {
	// Key signs every rpm (header and header+payload signatures) and, with
	// SignDeb, every deb (a debsign-style _gpgorigin member). Required.
	Key *pgp.Key
	// SignDeb adds the _gpgorigin signature to debs. apt never checks it
	// (the signed InRelease is apt's trust path) but debsig-verify can.
	SignDeb bool
	// Compression overrides Compression[format] ("zstd:3", "gzip:9", ...):
	// for benchmarks.
	Compression map[Format]string
	// Memory, when set, is shared by concurrent builds: each toolchain
	// build waits for its estimated peak memory (buildMemory) to be free.
	Memory *MemoryBudget
}

// spec is one package in format-neutral form.
type spec struct {
	name        string
	version     string
	release     int
	epoch       time.Time
	independent bool
	summary     string
	description string
	section     string
	group       string
	depends     []string
	conflicts   []string
	replaces    []string
	entries     []entry           // every path, both formats
	only        map[string]Format // dest -> the only format that carries it
	config      map[string]bool   // dest -> configuration file
	scripts     map[Format]scripts
}

// scripts are maintainer scripts' text ("" = none).
type scripts struct {
	preinst, postinst, prerm, postrm, posttrans string
}

// info turns s into an nfpm.Info for format f; script files are written
// into tmp (nfpm reads scripts from files).
func (s *spec) info(f Format, tmp string, o Options) (*nfpm.Info, error) {
	comp := Compression[f]
	if c, ok := o.Compression[f]; ok && c != "" {
		comp = c
	}
	epoch := s.epoch.UTC()
	info := &nfpm.Info{
		Name:            s.name,
		Arch:            Arch(f, s.independent),
		Platform:        "linux",
		Version:         s.version,
		VersionSchema:   "none",
		Release:         strconv.Itoa(s.release),
		Section:         s.section,
		Priority:        "optional",
		Maintainer:      Maintainer,
		Description:     s.description,
		Vendor:          Vendor,
		Homepage:        Homepage,
		License:         License,
		DisableGlobbing: true,
		MTime:           epoch,
	}
	info.Depends = append([]string(nil), s.depends...)
	info.Conflicts = append([]string(nil), s.conflicts...)
	if f == Deb {
		// Conflicts + Replaces lets `apt install halvm-gmp` replace halvm.
		// rpm gets no Obsoletes: dnf would then switch flavours on upgrade.
		info.Replaces = append([]string(nil), s.replaces...)
		info.Deb.Compression = comp
		if o.SignDeb {
			info.Deb.Signature.SignFn = func(r io.Reader) ([]byte, error) { return o.Key.DetachSignArmored(r, epoch) }
			info.Deb.Signature.Type = "origin"
		}
	} else {
		info.RPM.Compression = comp
		info.RPM.BuildHost = BuildHost
		info.RPM.Group = s.group
		info.RPM.Summary = s.summary
		// The rpm description is the body; the summary is its own tag.
		if body, ok := strings.CutPrefix(s.description, s.summary+"\n"); ok {
			info.Description = body
		}
		info.RPM.Packager = Maintainer
		info.RPM.Signature.SignFn = func(r io.Reader) ([]byte, error) { return o.Key.DetachSign(r, epoch) }
	}
	sc := s.scripts[f]
	for _, x := range []struct {
		text string
		name string
		dst  *string
	}{
		{sc.preinst, "preinst", &info.Scripts.PreInstall},
		{sc.postinst, "postinst", &info.Scripts.PostInstall},
		{sc.prerm, "prerm", &info.Scripts.PreRemove},
		{sc.postrm, "postrm", &info.Scripts.PostRemove},
		{sc.posttrans, "posttrans", &info.RPM.Scripts.PostTrans},
	} {
		if x.text == "" {
			continue
		}
		p := filepath.Join(tmp, string(f)+"-"+x.name)
		if err := os.WriteFile(p, []byte(x.text), 0o755); err != nil {
			return nil, fmt.Errorf("writing %s script: %w", x.name, err)
		}
		*x.dst = p
	}
	for _, e := range s.entries {
		if only, ok := s.only[e.Dest]; ok && only != f {
			continue
		}
		fi := &files.ContentFileInfo{Owner: "root", Group: "root", MTime: epoch, Mode: e.Mode.Perm()}
		c := &files.Content{Destination: e.Dest, FileInfo: fi}
		switch {
		case e.isDir():
			c.Type = files.TypeDir
		case e.isSymlink():
			c.Type = files.TypeSymlink
			c.Source = e.Link
		default:
			c.Type = files.TypeFile
			if s.config[e.Dest] {
				c.Type = files.TypeConfig
			}
			c.Source = e.Source
			fi.Size = e.Size
		}
		info.Contents = append(info.Contents, c)
	}
	return info, nil
}

// write builds s in format f into w.
func (s *spec) write(f Format, o Options, w io.Writer) error {
	if o.Key == nil {
		return errors.New("no signing key: load one with pgp.LoadKey (or generate a development key)")
	}
	tmp, err := os.MkdirTemp("", "halvm-packaging-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	info, err := s.info(f, tmp, o)
	if err != nil {
		return err
	}
	var p nfpm.Packager = deb.Default
	if f == RPM {
		p = rpm.DefaultRPM
	}
	if err := p.Package(info, w); err != nil {
		return err
	}
	return nil
}

// build writes s in format f to outDir/FileName atomically: on any error no
// file is left at the path (an existing file there is left untouched).
func (s *spec) build(ctx context.Context, f Format, o Options, outDir string) (string, error) {
	name := FileName(f, s.name, s.version, s.release, s.independent)
	dst := filepath.Join(outDir, name)
	err := fsutil.WriteAtomic(dst, 0o644, func(w io.Writer) error {
		return s.write(f, o, &ctxWriter{ctx: ctx, w: w})
	})
	if err != nil {
		return "", fmt.Errorf("building %s %s: %w", f, name, err)
	}
	return dst, nil
}

// ctxWriter fails writes once ctx is done (nfpm has no context).
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// generated is a small file the packager makes (copyright, changelog,
// lintian overrides): its bytes go to tmp and it becomes an entry.
type generated struct {
	dest string
	data []byte
	only Format // "" for both formats
}

// addGenerated writes each generated file under dir and adds it (and its
// non-system parent directories) to s.
func (s *spec) addGenerated(dir string, gens []generated) error {
	have := map[string]bool{}
	for _, e := range s.entries {
		have[e.Dest] = true
	}
	for i, g := range gens {
		p := filepath.Join(dir, fmt.Sprintf("gen-%03d-%s", i, path.Base(g.dest)))
		if err := os.WriteFile(p, g.data, 0o644); err != nil {
			return err
		}
		if have[g.dest] {
			return fmt.Errorf("%s is both in the tree and generated by the packager: remove it from the tree", g.dest)
		}
		have[g.dest] = true
		s.entries = append(s.entries, entry{Dest: g.dest, Source: p, Mode: 0o644, Size: int64(len(g.data))})
		if g.only != "" {
			s.only[g.dest] = g.only
		}
		for d := path.Dir(g.dest); d != "/" && !systemDirs[d]; d = path.Dir(d) {
			if !have[d] {
				have[d] = true
				s.entries = append(s.entries, entry{Dest: d, Mode: fs.ModeDir | 0o755})
				if g.only != "" {
					s.only[d] = g.only
				}
			}
		}
	}
	sort.Slice(s.entries, func(i, j int) bool { return s.entries[i].Dest < s.entries[j].Dest })
	return nil
}

// changelogGz is the gzip-compressed (reproducibly: detgzip) one-entry
// Debian changelog of a package.
func changelogGz(name, version string, release int, epoch time.Time) ([]byte, error) {
	b, err := detgzip.Bytes(debChangelog(name, version, release, epoch))
	if err != nil {
		return nil, fmt.Errorf("compressing the changelog of %s: %w", name, err)
	}
	return b, nil
}

// debChangelog is a one-entry Debian changelog for a binary-only package.
func debChangelog(name, version string, release int, epoch time.Time) []byte {
	return []byte(fmt.Sprintf("%s (%s-%d) stable; urgency=medium\n\n  * Release %s-%d, built by the halvm-release pipeline.\n\n -- %s  %s\n",
		name, version, release, version, release, Maintainer, changelogDate(epoch)))
}

// copyright is a machine-readable debian/copyright for text under license.
func copyright(licenseText string) []byte {
	var b bytes.Buffer
	b.WriteString("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n")
	b.WriteString("Upstream-Name: HaLVM\nSource: " + Homepage + "\n\n")
	b.WriteString("Files: *\nCopyright: 2010 Galois Inc. and the HaLVM contributors\nLicense: " + License + "\n")
	for _, l := range bytes.Split(bytes.TrimRight([]byte(licenseText), "\n"), []byte("\n")) {
		l = bytes.TrimRight(l, " \t\r")
		if len(l) == 0 {
			b.WriteString(" .\n")
		} else {
			b.WriteString(" ")
			b.Write(l)
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}

// bsd3 is the BSD-3-Clause license with upstream HaLVM's copyright notice
// (its LICENSE says "Copyright (c) 2010 Galois Inc."), used when the caller
// gives no license file.
const bsd3 = `Copyright (c) 2010 Galois Inc. and the HaLVM contributors.
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice,
   this list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from this
   software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE
ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE
LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR
CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF
SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS
INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN
CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE)
ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE
POSSIBILITY OF SUCH DAMAGE.
`
