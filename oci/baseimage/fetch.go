package baseimage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/run"
)

// CachePath is where Fetch keeps the .deb with the given sha256.
func CachePath(cacheDir, sum string) string {
	return filepath.Join(cacheDir, "debs", "sha256", sum+".deb")
}

// Fetch makes every pinned .deb available in the content-addressed cache
// and returns their paths in the order of pins. Cached files are
// re-hashed; missing ones are fetched with apt-get download name=version
// and must hash to the pin. The mirror is contacted only when something is
// missing. All problems are reported at once.
func Fetch(ctx context.Context, c Config, pins []Pin) ([]string, error) {
	if err := Validate("pins", pins); err != nil {
		return nil, fmt.Errorf("fetching debian packages: %w", err)
	}
	paths := make([]string, len(pins))
	var missing []int
	for i, p := range pins {
		paths[i] = CachePath(c.CacheDir, p.SHA256)
		_, sum, err := fsutil.HashFile(paths[i])
		switch {
		case err == nil && sum == p.SHA256:
			continue
		case err == nil:
			// A corrupt cache entry: drop it and fetch again.
			_ = os.Remove(paths[i])
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("fetching %s: %w", p, err)
		}
		missing = append(missing, i)
	}
	if len(missing) == 0 {
		return paths, nil
	}
	a, err := newApt(c.CacheDir, c.Mirror)
	if err != nil {
		return nil, err
	}
	if err := a.update(ctx); err != nil {
		return nil, err
	}
	want := make([]Pin, len(missing))
	for j, i := range missing {
		want[j] = pins[i]
	}
	locs, err := a.locate(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("fetching debian packages: %w", err)
	}
	var errs []error
	for j, p := range want {
		if locs[j].sha256 != p.SHA256 {
			errs = append(errs, fmt.Errorf("debian package %s: the mirror has sha256 %s, the pin says %s: the mirror changed a published version; re-pin with \"go run mage.go pins:update\" after checking why", p, locs[j].sha256, p.SHA256))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("fetching debian packages: %w", errors.Join(errs...))
	}
	if err := os.MkdirAll(filepath.Join(c.CacheDir, "debs", "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("fetching debian packages: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Join(c.CacheDir, "debs"), "download-")
	if err != nil {
		return nil, fmt.Errorf("fetching debian packages: %w", err)
	}
	defer os.RemoveAll(tmp)
	args := []string{"apt-get", "download", "-q"}
	for _, p := range want {
		args = append(args, p.String())
	}
	if err := run.Run(ctx, a.cmd(tmp, args...)); err != nil {
		return nil, fmt.Errorf("downloading pinned debian packages: %w", err)
	}
	for j, p := range want {
		f := filepath.Join(tmp, locs[j].file)
		_, sum, err := fsutil.HashFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("debian package %s: %w", p, err))
			continue
		}
		if sum != p.SHA256 {
			errs = append(errs, fmt.Errorf("debian package %s: downloaded file has sha256 %s, pinned %s", p, sum, p.SHA256))
			continue
		}
		if err := os.Rename(f, CachePath(c.CacheDir, p.SHA256)); err != nil {
			errs = append(errs, fmt.Errorf("debian package %s: caching: %w", p, err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("fetching debian packages: %w", errors.Join(errs...))
	}
	return paths, nil
}
