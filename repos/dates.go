package repos

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/halvm/halvm-release/debian"
)

// Publication dates. Every publication of a repository carries a signed
// date (apt: Release Date; dnf: the repomd revision, in Unix seconds) that
// is deterministic and increases from one publication to the next: the
// release's SOURCE_DATE_EPOCH, or one second after the latest publication
// already beside it when that is not earlier. The same lock published over
// the same publications gives the same bytes (a rebuild reproduces them),
// and a publication older than the one before it is visible in signed
// data: verify fails when `current` is not the newest.

// AptDate is the Release Date of an apt publication (the latest of its
// suites).
func AptDate(dir string) (time.Time, error) {
	rels, err := filepath.Glob(filepath.Join(dir, "dists", "*", "Release"))
	if err != nil {
		return time.Time{}, err
	}
	if len(rels) == 0 {
		return time.Time{}, fmt.Errorf("no dists/<suite>/Release in the apt publication %s", dir)
	}
	var latest time.Time
	for _, r := range rels {
		b, err := os.ReadFile(r)
		if err != nil {
			return time.Time{}, err
		}
		d, err := releaseDate(b)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: %w", r, err)
		}
		if d.After(latest) {
			latest = d
		}
	}
	return latest, nil
}

func releaseDate(release []byte) (time.Time, error) {
	sc := bufio.NewScanner(bytes.NewReader(release))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Date:"); ok {
			t, err := time.Parse(debian.ReleaseDateFormat, strings.TrimSpace(v))
			if err != nil {
				return time.Time{}, fmt.Errorf("Date %q: %w", strings.TrimSpace(v), err)
			}
			return t, nil
		}
	}
	return time.Time{}, errors.New("no Date field")
}

// DnfDate is the repomd revision of a dnf publication, as a time.
func DnfDate(dir string) (time.Time, error) {
	p := filepath.Join(dir, "repodata", "repomd.xml")
	b, err := os.ReadFile(p)
	if err != nil {
		return time.Time{}, err
	}
	var md struct {
		Revision string `xml:"revision"`
	}
	if err := xml.Unmarshal(b, &md); err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", p, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(md.Revision), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: revision %q is not Unix seconds: %w", p, md.Revision, err)
	}
	return time.Unix(n, 0).UTC(), nil
}

// nextDate is the date of a new publication written into dst (a staging
// directory under <root>/publications): epoch, or one second after the
// latest date of the publications beside it when that is later. A
// publication whose date cannot be read is skipped (it was verified when
// it was made; verify reports it).
func nextDate(epoch time.Time, dst string, dateOf func(string) (time.Time, error)) time.Time {
	d := epoch.UTC().Truncate(time.Second)
	ents, err := os.ReadDir(filepath.Dir(dst))
	if err != nil {
		return d
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		t, err := dateOf(filepath.Join(filepath.Dir(dst), e.Name()))
		if err == nil && !t.Before(d) {
			d = t.Add(time.Second)
		}
	}
	return d
}
