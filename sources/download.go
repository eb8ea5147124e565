package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"

	"github.com/halvm/halvm-release/internal/fsutil"
	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/pins"
)

// blob is one pinned download.
type blob struct {
	what   string // "file ghc-8.0.2-..." for messages
	url    string // where it is fetched from
	size   int64
	sha256 string
}

// FetchFiles fetches and verifies the lock's files into the cache. Pending
// pins are refused, all of them at once, before anything is fetched.
func FetchFiles(ctx context.Context, files []pins.File, o Options) ([]FileResult, error) {
	if err := refusePending(files); err != nil {
		return nil, err
	}
	var out []FileResult
	for _, f := range files {
		r, err := FetchFile(ctx, f, o)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// FetchFile fetches one pinned file into the cache (or finds it there) and
// verifies its size and sha256. It records the file in the ledger as
// file:<name> with the lock's URL.
func FetchFile(ctx context.Context, f pins.File, o Options) (FileResult, error) {
	if err := refusePending([]pins.File{f}); err != nil {
		return FileResult{}, err
	}
	o, err := o.normalized()
	if err != nil {
		return FileResult{}, fmt.Errorf("fetching file %s: %w", f.Name, err)
	}
	from := mapURL(o.MirrorMap, f.URL)
	if o.MirrorDir != "" {
		base, err := urlBase(f.URL)
		if err != nil {
			return FileResult{}, fmt.Errorf("fetching file %s: %w", f.Name, err)
		}
		from = filepath.Join(o.MirrorDir, "files", base)
	}
	r, err := o.fetchBlob(ctx, blob{what: "file " + f.Name, url: from, size: f.Size, sha256: f.SHA256})
	if err != nil {
		return FileResult{}, err
	}
	r.Name = f.Name
	o.record(pipeline.Artifact{Name: LedgerName("file", f.Name), Path: f.URL, Size: r.Size, SHA256: r.SHA256})
	return r, nil
}

// urlBase is the last element of a URL's path.
func urlBase(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	b := path.Base(p.Path)
	if b == "/" || b == "." || b == "" {
		return "", fmt.Errorf("URL %s names no file", u)
	}
	return b, nil
}

// fetchBlob returns the verified cache entry of b, downloading it first
// when the cache lacks it. A download goes to a temporary name and is
// renamed to <cache>/sha256/<hex> only after its size and sha256 match.
func (o Options) fetchBlob(ctx context.Context, b blob) (FileResult, error) {
	final := o.cache("sha256", b.sha256)
	res := FileResult{Path: final, URL: b.url, Size: b.size, SHA256: b.sha256}
	if size, sum, err := fsutil.HashFile(final); err == nil {
		if (size == b.size || b.size == 0) && sum == b.sha256 {
			res.Size = size
			res.Cached = true
			return res, nil
		}
		// A damaged cache entry is never used: drop it and fetch again.
		if err := os.Remove(final); err != nil {
			return res, fmt.Errorf("fetching %s: removing damaged cache entry %s: %w", b.what, final, err)
		}
	}
	tmpDir := o.cache("tmp")
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		return res, fmt.Errorf("fetching %s: %w", b.what, err)
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return res, fmt.Errorf("fetching %s: %w", b.what, err)
	}
	if size, ok := o.pullShared(ctx, b, final); ok {
		res.Size, res.Cached = size, true
		return res, nil
	}
	tmp, err := os.CreateTemp(tmpDir, b.sha256+".partial-*")
	if err != nil {
		return res, fmt.Errorf("fetching %s: %w", b.what, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // gone after the rename; removed on every failure
	}()
	n, sum, err := o.download(ctx, b, tmp)
	if err != nil {
		return res, fmt.Errorf("fetching %s from %s: %w (nothing was kept)", b.what, b.url, err)
	}
	if b.size == 0 && n > b.limit() {
		return res, fmt.Errorf("fetching %s from %s: longer than %d bytes with no size pinned: check the URL (nothing was kept)", b.what, b.url, b.limit())
	}
	if b.size != 0 && n != b.size {
		return res, fmt.Errorf("fetching %s from %s: got %d bytes, the lock pins %d: the file changed upstream or the download is damaged (nothing was kept)",
			b.what, b.url, n, b.size)
	}
	if sum != b.sha256 {
		return res, fmt.Errorf("fetching %s from %s: sha256 is %s, the lock pins %s: the file changed upstream or was tampered with (nothing was kept)",
			b.what, b.url, sum, b.sha256)
	}
	if err := tmp.Sync(); err != nil {
		return res, fmt.Errorf("fetching %s: %w", b.what, err)
	}
	if err := tmp.Chmod(0o444); err != nil {
		return res, fmt.Errorf("fetching %s: %w", b.what, err)
	}
	if err := tmp.Close(); err != nil {
		return res, fmt.Errorf("fetching %s: %w", b.what, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return res, fmt.Errorf("fetching %s: %w", b.what, err)
	}
	res.Size = n
	if o.Registry != nil {
		// A failure is warned about by the registry cache; the local copy stands.
		_ = o.Registry.PushInput(ctx, b.sha256, n, b.what, final)
	}
	return res, nil
}

// pullShared fetches b from the shared input cache into final, verified
// against the lock's size and sha256 like a download; anything else is
// removed and the input is downloaded instead.
func (o Options) pullShared(ctx context.Context, b blob, final string) (int64, bool) {
	if o.Registry == nil {
		return 0, false
	}
	if found, err := o.Registry.PullInput(ctx, b.sha256, final); err != nil || !found {
		return 0, false
	}
	size, sum, err := fsutil.HashFile(final)
	if err != nil || sum != b.sha256 || (b.size != 0 && size != b.size) {
		os.Remove(final)
		return 0, false
	}
	return size, os.Chmod(final, 0o444) == nil
}

// maxUnsized bounds the download of a file pinned by sha256 only (its size
// not recorded yet).
const maxUnsized = 1 << 30

// limit is how many bytes b may have.
func (b blob) limit() int64 {
	if b.size == 0 {
		return maxUnsized
	}
	return b.size
}

// errTooBig stops reading a body that is already longer than the pin.
var errTooBig = errors.New("longer than pinned")

// download copies b's content into w (reading at most one byte more than
// pinned) and returns its size and sha256.
func (o Options) download(ctx context.Context, b blob, w io.Writer) (int64, string, error) {
	body, err := o.open(ctx, b)
	if err != nil {
		return 0, "", err
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(ctxReader{ctx, body}, b.limit()+1))
	if err != nil {
		if ctx.Err() != nil {
			return n, "", fmt.Errorf("interrupted after %d of %d bytes: %w", n, b.size, ctx.Err())
		}
		return n, "", fmt.Errorf("interrupted after %d of %d bytes: %w", n, b.size, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// open returns the content of b's URL: a local path, file://, http(s)://.
func (o Options) open(ctx context.Context, b blob) (io.ReadCloser, error) {
	if filepath.IsAbs(b.url) {
		return openLocal(b.url, b.size)
	}
	u, err := url.Parse(b.url)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "file":
		return openLocal(filepath.FromSlash(u.Path), b.size)
	case "http", "https":
		resp, err := o.request(ctx, http.MethodGet, b.url)
		if err != nil {
			return nil, err
		}
		if resp.ContentLength >= 0 && b.size != 0 && resp.ContentLength != b.size {
			resp.Body.Close()
			return nil, fmt.Errorf("server announces %d bytes, the lock pins %d: the file changed upstream or the pin is wrong", resp.ContentLength, b.size)
		}
		return resp.Body, nil
	}
	return nil, fmt.Errorf("URL scheme %q is not supported (want file, http or https)", u.Scheme)
}

// request sends one request for u and returns the response of a server
// that answered 200 OK.
func (o Options) request(ctx context.Context, method, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "halvm-release")
	c := o.HTTPClient
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("server answered %s", resp.Status)
	}
	return resp, nil
}

func openLocal(p string, size int64) (io.ReadCloser, error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	if fi, err := fh.Stat(); err == nil && fi.Mode().IsRegular() && size != 0 && fi.Size() != size {
		fh.Close()
		return nil, fmt.Errorf("%s has %d bytes, the lock pins %d: the file changed or the pin is wrong", p, fi.Size(), size)
	}
	return fh, nil
}

// ctxReader stops a copy when the context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// FetchDebs fetches and verifies Debian packages into the cache, by
// archive and pool filename from the configured archives (DebArchives, the
// mirror directory, or this machine's apt configuration).
func FetchDebs(ctx context.Context, debs []pins.Deb, o Options) ([]FileResult, error) {
	o, err := o.normalized()
	if err != nil {
		return nil, fmt.Errorf("fetching Debian packages: %w", err)
	}
	archives := o.DebArchives
	if archives == nil && o.MirrorDir == "" {
		root := o.AptRoot
		if root == "" {
			root = "/"
		}
		if archives, err = AptArchives(root); err != nil {
			return nil, fmt.Errorf("fetching Debian packages: %w", err)
		}
	}
	var missing []string
	seen := map[string]bool{}
	for _, d := range debs {
		if _, ok := archives[d.Archive]; !ok && o.MirrorDir == "" && !seen[d.Archive] {
			seen[d.Archive] = true
			missing = append(missing, d.Archive)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("fetching Debian packages: no URI for archive(s) %v: add them to apt's sources (/etc/apt/sources.list.d/*.sources) or give the Debian mirror option", missing)
	}
	var out []FileResult
	for _, d := range debs {
		from := ""
		if o.MirrorDir != "" {
			from = filepath.Join(o.MirrorDir, d.Archive, filepath.FromSlash(d.Filename))
		} else {
			base := archives[d.Archive]
			for len(base) > 0 && base[len(base)-1] == '/' {
				base = base[:len(base)-1]
			}
			from = mapURL(o.MirrorMap, base+"/"+d.Filename)
		}
		r, err := o.fetchBlob(ctx, blob{what: "Debian package " + DebName(d), url: from, size: d.Size, sha256: d.SHA256})
		if err != nil {
			return nil, err
		}
		r.Name = DebName(d)
		o.record(pipeline.Artifact{Name: LedgerName("deb", DebName(d)), Path: d.Archive + "/" + d.Filename, Size: r.Size, SHA256: r.SHA256})
		out = append(out, r)
	}
	return out, nil
}
