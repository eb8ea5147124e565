package toolchain

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/halvm/halvm-release/internal/run"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// clampTree clamps the mtime of every path below root (symlinks
// included) to epoch. With modes, it also normalizes permissions: 0755 for
// directories and files with any execute bit, 0644 for other files.
func clampTree(root string, epoch time.Time, modes bool) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if modes && fi.Mode()&fs.ModeSymlink == 0 {
			want := fs.FileMode(0o644)
			if fi.IsDir() || fi.Mode()&0o111 != 0 {
				want = 0o755
			}
			if fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != want {
				if err := os.Chmod(p, want); err != nil {
					return err
				}
			}
		}
		if fi.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		return lutimes(p, fi.ModTime(), epoch)
	})
	if err != nil {
		return err
	}
	// Directories last, deepest first: writing below a directory changes its mtime.
	for i := len(dirs) - 1; i >= 0; i-- {
		fi, err := os.Lstat(dirs[i])
		if err != nil {
			return err
		}
		if err := lutimes(dirs[i], fi.ModTime(), epoch); err != nil {
			return err
		}
	}
	return nil
}

func lutimes(p string, mtime, epoch time.Time) error {
	t := mtime
	if t.After(epoch) {
		t = epoch
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// Leak is a file of the installed tree that names the build directory.
type Leak struct {
	Path  string // relative to the tree root
	Count int    // occurrences
	First string // the text around the first occurrence
}

// FindLeaks lists every file (and symlink target) below root that contains
// buildDir, sorted by path.
func FindLeaks(root, buildDir string) ([]Leak, error) {
	needle := []byte(buildDir)
	var leaks []Leak
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if strings.Contains(t, buildDir) {
				leaks = append(leaks, Leak{Path: rel, Count: 1, First: "symlink -> " + t})
			}
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if n := bytes.Count(data, needle); n > 0 {
				i := bytes.Index(data, needle)
				lo, hi := max(0, i-30), min(len(data), i+len(needle)+30)
				leaks = append(leaks, Leak{Path: rel, Count: n, First: strconv.QuoteToASCII(string(data[lo:hi]))})
			}
		}
		return nil
	})
	sort.Slice(leaks, func(i, j int) bool { return leaks[i].Path < leaks[j].Path })
	return leaks, err
}

// CheckLeaks fails listing every file below root that still contains the
// build directory path.
func CheckLeaks(root, buildDir string) error {
	leaks, err := FindLeaks(root, buildDir)
	if err != nil {
		return fmt.Errorf("checking %s for build-path leaks: %w", root, err)
	}
	if len(leaks) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d installed files contain the build directory %s (the tree would not work anywhere else; fix the recipe or upstream so the path is not baked in):", len(leaks), buildDir)
	for _, l := range leaks {
		fmt.Fprintf(&b, "\n  %s (%d times, first: %s)", l.Path, l.Count, l.First)
	}
	return errors.New(b.String())
}

// WriteManifest writes one line per path of fsys, sorted: directories
// "d <mode> <path>/", files "f <mode> <size> <sha256> <path>", symlinks
// "l <path> -> <target>". Paths with unusual characters are quoted.
func WriteManifest(w io.Writer, fsys fs.FS) error {
	type line struct{ key, text string }
	var lines []line
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		name := manifestPath(p)
		switch {
		case d.IsDir():
			lines = append(lines, line{p, fmt.Sprintf("d %04o %s/", fi.Mode().Perm(), name)})
		case d.Type()&fs.ModeSymlink != 0:
			t, err := fs.ReadLink(fsys, p)
			if err != nil {
				return err
			}
			lines = append(lines, line{p, fmt.Sprintf("l %s -> %s", name, manifestPath(t))})
		case d.Type().IsRegular():
			f, err := fsys.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			lines = append(lines, line{p, fmt.Sprintf("f %04o %d %s %s", fi.Mode().Perm(), n, hex.EncodeToString(h.Sum(nil)), name)})
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, fi.Mode().Type())
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].key < lines[j].key })
	for _, l := range lines {
		if _, err := io.WriteString(w, l.text+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// ManifestEntry is one line of a tree manifest (WriteManifest).
type ManifestEntry struct {
	Type   byte        // 'd' directory, 'f' regular file, 'l' symbolic link
	Path   string      // slash-separated, relative to the tree, unquoted
	Mode   fs.FileMode // permission bits (d and f)
	Size   int64       // f only
	SHA256 string      // f only, lower-case hex
	Target string      // l only, unquoted
}

// ReadManifestFile reads the tree manifest at path (ReadManifest) and
// returns its regular files, the entries an SBOM lists.
func ReadManifestFile(path string) ([]ManifestEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the tree manifest: %w", err)
	}
	defer f.Close()
	entries, err := ReadManifest(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var files []ManifestEntry
	for _, e := range entries {
		if e.Type == 'f' {
			files = append(files, e)
		}
	}
	return files, nil
}

// ReadManifest parses a tree manifest as WriteManifest writes it: every
// line must be well-formed, quoted paths included; lines starting with #
// are comments (the build heads its manifests with one). It reports the
// first ten malformed lines at once, with their numbers.
func ReadManifest(r io.Reader) ([]ManifestEntry, error) {
	var out []ManifestEntry
	var problems []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" || strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		e, err := parseManifestLine(sc.Text())
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %v", n, err))
			if len(problems) == 10 {
				break
			}
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the tree manifest: %w", err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("malformed tree manifest: %s", strings.Join(problems, "; "))
	}
	return out, nil
}

func parseManifestLine(l string) (ManifestEntry, error) {
	kind, rest, _ := strings.Cut(l, " ")
	switch kind {
	case "d":
		mode, p, ok := strings.Cut(rest, " ")
		if !ok || !strings.HasSuffix(p, "/") {
			return ManifestEntry{}, errors.New(`want "d <mode> <path>/"`)
		}
		m, err := parseMode(mode)
		if err != nil {
			return ManifestEntry{}, err
		}
		name, err := unquotePath(strings.TrimSuffix(p, "/"))
		return ManifestEntry{Type: 'd', Path: name, Mode: m}, err
	case "f":
		f := strings.SplitN(rest, " ", 4)
		if len(f) != 4 {
			return ManifestEntry{}, errors.New(`want "f <mode> <size> <sha256> <path>"`)
		}
		m, err := parseMode(f[0])
		if err != nil {
			return ManifestEntry{}, err
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			return ManifestEntry{}, fmt.Errorf("bad size %q", f[1])
		}
		if len(f[2]) != 64 || strings.Trim(f[2], "0123456789abcdef") != "" {
			return ManifestEntry{}, fmt.Errorf("bad sha256 %q", f[2])
		}
		name, err := unquotePath(f[3])
		return ManifestEntry{Type: 'f', Path: name, Mode: m, Size: size, SHA256: f[2]}, err
	case "l":
		p, target, ok := cutQuoted(rest, " -> ")
		if !ok {
			return ManifestEntry{}, errors.New(`want "l <path> -> <target>"`)
		}
		name, err := unquotePath(p)
		if err != nil {
			return ManifestEntry{}, err
		}
		t, err := unquotePath(target)
		return ManifestEntry{Type: 'l', Path: name, Target: t}, err
	}
	return ManifestEntry{}, fmt.Errorf("unknown entry kind %q (want d, f or l)", kind)
}

func parseMode(s string) (fs.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m&^0o7777 != 0 {
		return 0, fmt.Errorf("bad mode %q", s)
	}
	return fs.FileMode(m), nil
}

// unquotePath undoes manifestPath.
func unquotePath(p string) (string, error) {
	if !strings.HasPrefix(p, `"`) {
		return p, nil
	}
	u, err := strconv.Unquote(p)
	if err != nil {
		return "", fmt.Errorf("bad quoted path %s", p)
	}
	return u, nil
}

// cutQuoted splits "<path><sep><rest>" where path may be quoted.
func cutQuoted(s, sep string) (string, string, bool) {
	if strings.HasPrefix(s, `"`) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil || !strings.HasPrefix(s[len(q):], sep) {
			return "", "", false
		}
		return q, s[len(q)+len(sep):], true
	}
	return strings.Cut(s, sep)
}

// manifestPath quotes a path with unusual characters (unquotePath).
func manifestPath(p string) string {
	for _, r := range p {
		if r <= ' ' || r == '"' || r == '\\' || r > '~' {
			return strconv.Quote(p)
		}
	}
	return p
}

// stripTree strips the symbols not needed for relocation from every ELF
// executable and shared object below root, as Debian's dh_strip does
// (upstream's build sets STRIP_CMD=:, and the install copies host tools
// unstripped). Objects and archives (start.o, the RTS and library .a files)
// are left alone: unikernels are linked from them. strip is deterministic.
func stripTree(root string) error {
	var targets []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := elf.Open(p)
		if err != nil {
			return nil // not ELF
		}
		typ := f.Type
		f.Close()
		if typ == elf.ET_EXEC || typ == elf.ET_DYN {
			targets = append(targets, p)
		}
		return nil
	})
	if err != nil || len(targets) == 0 {
		return err
	}
	sort.Strings(targets)
	args := append([]string{"strip", "--strip-unneeded", "--remove-section=.comment", "--remove-section=.note"}, targets...)
	return run.Run(context.Background(), run.Cmd{Args: args, Env: run.BaseEnv()})
}
