package pins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/halvm/halvm-release/debian/deb822"
	"github.com/halvm/halvm-release/internal/run"
)

// Resolver answers the questions pins:update asks of the outside world.
type Resolver interface {
	// ResolveRef returns the commit a branch or tag points at.
	ResolveRef(ctx context.Context, url, ref string) (string, error)
	// CommitTime returns the committer time (Unix seconds) of a commit.
	CommitTime(ctx context.Context, url, commit string) (int64, error)
	// ResolveDeb returns the mirror's candidate of a Debian package.
	ResolveDeb(ctx context.Context, name, arch string) (Deb, error)
	// Measure downloads url and returns its size and sha256.
	Measure(ctx context.Context, url string) (int64, string, error)
}

// ImageResolver resolves the Debian packages of the toolchain image on the
// mirror as it is now (package oci/baseimage implements it; pins stays a leaf).
// A Resolver that also implements it serves the "image" request.
type ImageResolver interface {
	// ResolveImage returns the base layer's packages (role image-base) and
	// the dependency layer's packages on top of it (role image-deps).
	ResolveImage(ctx context.Context) (base, deps []Deb, err error)
}

// Update applies update requests to a copy of l and returns it. Requests:
//
//	debs                 every pinned Debian package to the mirror's candidate (not the image's: see image)
//	deb:NAME             one Debian package
//	source:NAME@REF      a source's commit to what REF (branch or tag) points at now
//	file:NAME            a file's size and sha256, measured by downloading it
//	epoch                SOURCE_DATE_EPOCH from the superproject's commit time
//	image                the image's base and dependency layers (roles image-base,
//	                     image-deps), replaced as a whole (r must be an ImageResolver)
//
// Every request is tried; the error lists all that failed.
func Update(ctx context.Context, l *Lock, r Resolver, requests []string) (*Lock, error) {
	n := clone(l)
	var errs []string
	fail := func(req string, err error) { errs = append(errs, fmt.Sprintf("%s: %v", req, err)) }
	for _, req := range requests {
		kind, arg, _ := strings.Cut(req, ":")
		switch {
		case req == "debs":
			for i := range n.Debs {
				if n.Debs[i].Role == RoleImageBase || n.Debs[i].Role == RoleImageDeps {
					continue // resolved as a closed set by "image"
				}
				if err := updateDeb(ctx, r, &n.Debs[i]); err != nil {
					fail(req, err)
				}
			}
		case kind == "deb":
			found := false
			for i := range n.Debs {
				if n.Debs[i].Name == arg {
					found = true
					if err := updateDeb(ctx, r, &n.Debs[i]); err != nil {
						fail(req, err)
					}
				}
			}
			if !found {
				fail(req, fmt.Errorf("no Debian package %q is pinned", arg))
			}
		case kind == "source":
			name, ref, ok := strings.Cut(arg, "@")
			i := sourceIndex(n, name)
			if !ok || ref == "" || i < 0 {
				fail(req, fmt.Errorf("want source:NAME@REF with NAME a pinned source"))
				continue
			}
			c, err := r.ResolveRef(ctx, n.Sources[i].URL, ref)
			if err != nil {
				fail(req, err)
				continue
			}
			n.Sources[i].Commit = c
		case kind == "file":
			i := fileIndex(n, arg)
			if i < 0 {
				fail(req, fmt.Errorf("no file %q is pinned", arg))
				continue
			}
			size, sum, err := r.Measure(ctx, n.Files[i].URL)
			if err != nil {
				fail(req, err)
				continue
			}
			if f := n.Files[i]; f.Pending == "" && f.SHA256 != "" && f.SHA256 != sum {
				fail(req, fmt.Errorf("%s measures sha256 %s but the lock pins %s (a published checksum): the download is not the pinned file; nothing was recorded", f.URL, sum, f.SHA256))
				continue
			}
			n.Files[i].Size, n.Files[i].SHA256, n.Files[i].Pending = size, sum, ""
		case req == "epoch":
			root := n.Root()
			t, err := r.CommitTime(ctx, root.URL, root.Commit)
			if err != nil {
				fail(req, err)
				continue
			}
			n.Release.SourceDateEpoch = t
			n.Release.EpochNote = fmt.Sprintf("committer time of the superproject commit %s", root.Commit[:12])
		case req == "image":
			ir, ok := r.(ImageResolver)
			if !ok {
				fail(req, fmt.Errorf("this resolver cannot resolve image packages"))
				continue
			}
			base, deps, err := ir.ResolveImage(ctx)
			if err != nil {
				fail(req, err)
				continue
			}
			var keep []Deb
			for _, d := range n.Debs {
				if d.Role != RoleImageBase && d.Role != RoleImageDeps {
					keep = append(keep, d)
				}
			}
			for _, d := range base {
				d.Role = RoleImageBase
				keep = append(keep, d)
			}
			for _, d := range deps {
				d.Role = RoleImageDeps
				keep = append(keep, d)
			}
			n.Debs = keep
		default:
			fail(req, fmt.Errorf("unknown request: want debs, deb:NAME, source:NAME@REF, file:NAME, epoch or image"))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("pins:update: %d request(s) failed (the lock was not changed):\n  %s", len(errs), strings.Join(errs, "\n  "))
	}
	// The result must still be a valid lock.
	if _, err := Parse("updated lock", Bytes(n)); err != nil {
		return nil, err
	}
	return n, nil
}

func updateDeb(ctx context.Context, r Resolver, d *Deb) error {
	nd, err := r.ResolveDeb(ctx, d.Name, d.Arch)
	if err != nil {
		return err
	}
	nd.Role = d.Role
	*d = nd
	return nil
}

func sourceIndex(l *Lock, name string) int {
	for i, s := range l.Sources {
		if s.Name == name {
			return i
		}
	}
	return -1
}

func fileIndex(l *Lock, name string) int {
	for i, f := range l.Files {
		if f.Name == name {
			return i
		}
	}
	return -1
}

func clone(l *Lock) *Lock {
	n := *l
	n.Flavours = append([]Flavour(nil), l.Flavours...)
	for i := range n.Flavours {
		n.Flavours[i].ConfigureFlags = append([]string(nil), l.Flavours[i].ConfigureFlags...)
	}
	n.Rewrites = append([]Rewrite(nil), l.Rewrites...)
	n.Sources = append([]Source(nil), l.Sources...)
	n.Excluded = append([]Excluded(nil), l.Excluded...)
	n.Files = append([]File(nil), l.Files...)
	n.Debs = append([]Deb(nil), l.Debs...)
	return &n
}

// Diff returns a unified diff between two lock encodings ("" when equal).
func Diff(ctx context.Context, oldLock, newLock *Lock) (string, error) {
	a, b := Bytes(oldLock), Bytes(newLock)
	if bytes.Equal(a, b) {
		return "", nil
	}
	dir, err := os.MkdirTemp("", "halvm-lock-diff-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	pa, pb := filepath.Join(dir, "halvm.lock.old"), filepath.Join(dir, "halvm.lock.new")
	if err := os.WriteFile(pa, a, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(pb, b, 0o644); err != nil {
		return "", err
	}
	out, err := run.Output(ctx, run.Cmd{Args: []string{"diff", "-u", "--label", "pins/halvm.lock", "--label", "pins/halvm.lock (updated)", pa, pb}, Env: run.BaseEnv()})
	if len(out) > 0 { // diff exits 1 when the files differ
		return string(out), nil
	}
	return "", err
}

// HostResolver resolves with this machine's git, apt-cache and HTTP client.
type HostResolver struct {
	Client *http.Client // nil is http.DefaultClient
}

func (h HostResolver) ResolveRef(ctx context.Context, url, ref string) (string, error) {
	out, err := run.Output(ctx, run.Cmd{Args: []string{"git", "ls-remote", "--", url, ref, ref + "^{}"}, Env: run.BaseEnv("GIT_TERMINAL_PROMPT=0")})
	if err != nil {
		return "", fmt.Errorf("resolving %s at %s: %w", ref, url, err)
	}
	var commit, peeled string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if strings.HasSuffix(f[1], "^{}") {
			peeled = f[0]
		} else if commit == "" {
			commit = f[0]
		}
	}
	if peeled != "" {
		commit = peeled // an annotated tag: pin the commit it points at
	}
	if !hex40.MatchString(commit) {
		return "", fmt.Errorf("%s has no branch or tag %q", url, ref)
	}
	return commit, nil
}

func (h HostResolver) CommitTime(ctx context.Context, url, commit string) (int64, error) {
	dir, err := os.MkdirTemp("", "halvm-epoch-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	env := run.BaseEnv("GIT_TERMINAL_PROMPT=0")
	steps := [][]string{
		{"git", "init", "-q", "--bare", dir},
		{"git", "-C", dir, "fetch", "-q", "--filter=blob:none", "--depth=1", url, commit},
	}
	for _, s := range steps {
		if err := run.Run(ctx, run.Cmd{Args: s, Env: env}); err != nil {
			return 0, fmt.Errorf("reading the commit time of %s at %s: %w", commit, url, err)
		}
	}
	out, err := run.Output(ctx, run.Cmd{Args: []string{"git", "-C", dir, "log", "-1", "--format=%ct", commit}, Env: env})
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
}

func (h HostResolver) ResolveDeb(ctx context.Context, name, arch string) (Deb, error) {
	spec := name
	if arch != "" && arch != "all" {
		spec = name + ":" + arch
	}
	out, err := run.Output(ctx, run.Cmd{Args: []string{"apt-cache", "show", "--no-all-versions", spec}, Env: run.BaseEnv()})
	if err != nil {
		return Deb{}, fmt.Errorf("resolving Debian package %s (run `apt-get update` first): %w", spec, err)
	}
	return ParseAptStanza(out)
}

// ParseAptStanza reads the first stanza of `apt-cache show` output.
func ParseAptStanza(out []byte) (Deb, error) {
	paras, err := deb822.Parse(out)
	if err != nil {
		return Deb{}, fmt.Errorf("reading apt-cache output: %w", err)
	}
	var p deb822.Paragraph
	if len(paras) > 0 {
		p = paras[0]
	}
	f := map[string]string{}
	for _, k := range []string{"Package", "Version", "Architecture", "Filename", "Size", "SHA256"} {
		f[k] = p.Get(k)
	}
	size, err := strconv.ParseInt(f["Size"], 10, 64)
	if err != nil || f["Package"] == "" || f["Filename"] == "" || !hex64.MatchString(f["SHA256"]) {
		return Deb{}, fmt.Errorf("apt-cache gave an incomplete record (Package %q, Filename %q, Size %q, SHA256 %q)", f["Package"], f["Filename"], f["Size"], f["SHA256"])
	}
	archive := "debian"
	if strings.HasPrefix(f["Filename"], "pool/updates/") {
		archive = "debian-security"
	}
	return Deb{Name: f["Package"], Version: f["Version"], Arch: f["Architecture"], Archive: archive,
		Filename: f["Filename"], Size: size, SHA256: f["SHA256"]}, nil
}

func (h HostResolver) Measure(ctx context.Context, url string) (int64, string, error) {
	c := h.Client
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("downloading %s: %w (pins:update needs network access to the upstream hosts)", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, "", fmt.Errorf("downloading %s: %s", url, resp.Status)
	}
	hash := sha256.New()
	n, err := io.Copy(hash, resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("downloading %s: %w", url, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return 0, "", fmt.Errorf("downloading %s: got %d of %d bytes", url, n, resp.ContentLength)
	}
	return n, hex.EncodeToString(hash.Sum(nil)), nil
}

// UpdateFile applies requests to the lock at path, writes it back in
// canonical form and prints the diff to w. Nothing is written when any
// request fails.
func UpdateFile(ctx context.Context, path string, r Resolver, requests []string, w io.Writer) error {
	if len(requests) == 0 {
		return fmt.Errorf("pins:update: nothing to do: give requests such as \"debs\", \"file:happy\", \"source:halvm-ghc@halvm\" or \"epoch\"")
	}
	old, err := LoadFile(path)
	if err != nil {
		return err
	}
	n, err := Update(ctx, old, r, requests)
	if err != nil {
		return err
	}
	diff, err := Diff(ctx, old, n)
	if err != nil {
		return err
	}
	if diff == "" {
		fmt.Fprintln(w, "pins:update: the lock is already up to date")
		return nil
	}
	if err := writeLock(path, n); err != nil {
		return err
	}
	_, err = io.WriteString(w, diff)
	return err
}

// RecordSizes records the measured sizes of files pinned by sha256 alone
// (their size not yet known), after a fetch verified their sha256. sums
// maps a file name to the verified sha256 and size; an entry whose sha256
// is not the pinned one is refused. It returns the names it recorded, and
// rewrites the lock at path only when there are some.
func RecordSizes(path string, verified map[string]struct {
	SHA256 string
	Size   int64
}) ([]string, error) {
	l, err := LoadFile(path)
	if err != nil {
		return nil, err
	}
	var done []string
	for i, f := range l.Files {
		v, ok := verified[f.Name]
		if !ok || f.Pending != "" || f.SizeKnown() {
			continue
		}
		if v.SHA256 != f.SHA256 || v.Size <= 0 {
			return nil, fmt.Errorf("recording the size of file %s: verified sha256 %s (%d bytes) is not the pinned %s", f.Name, v.SHA256, v.Size, f.SHA256)
		}
		l.Files[i].Size = v.Size
		done = append(done, fmt.Sprintf("%s: size %d", f.Name, v.Size))
	}
	if len(done) == 0 {
		return nil, nil
	}
	return done, writeLock(path, l)
}
