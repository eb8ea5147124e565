// Package regcache backs the pipeline's local caches with an OCI registry
// (HALVM_CACHE_REGISTRY=<registry>/<repository>), so that runners share what
// any of them built. Entries are OCI artifacts, each one manifest with its
// own artifactType, a JSON config and one blob:
//
//   - a toolchain step output: artifactType application/vnd.halvm.step.v1,
//     config application/vnd.halvm.step.config.v1+json (the step's metadata:
//     its key's components, i.e. the recipe), blob
//     application/vnd.halvm.step.v1+tar, annotations dev.halvm.step.key and
//     dev.halvm.step.name, tagged step-<key>;
//   - an input: artifactType application/vnd.halvm.input.v1, blob
//     application/vnd.halvm.input.v1, annotation dev.halvm.input.sha256,
//     tagged sha256-<hex>.
//
// Blobs are content-addressed, so concurrent pushes of one key leave one
// valid entry: whichever manifest lands last points at blobs that are all
// complete. Every pull hashes what it received: an entry whose content
// does not match its digest is discarded with a warning and the caller
// rebuilds. An unreachable registry gives one warning and the callers carry
// on with their local caches; it never gives a wrong result.
package regcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/halvm/halvm-release/internal/fsutil"
)

// Media types of the cache's artifacts.
const (
	StepArtifactType  = "application/vnd.halvm.step.v1"
	StepConfigType    = "application/vnd.halvm.step.config.v1+json"
	StepLayerType     = "application/vnd.halvm.step.v1+tar"
	InputArtifactType = "application/vnd.halvm.input.v1"
	InputConfigType   = "application/vnd.halvm.input.config.v1+json"
	InputLayerType    = "application/vnd.halvm.input.v1"
	manifestType      = "application/vnd.oci.image.manifest.v1+json"
)

// ErrCorrupt marks a pulled entry whose content did not match its digest.
var ErrCorrupt = errors.New("registry cache entry does not match its digest")

// Cache is one registry repository used as a cache.
type Cache struct {
	repo name.Repository
	warn io.Writer

	mu     sync.Mutex
	client *http.Client
	down   error // set once the registry failed: every later call is a no-op
	skips  int   // operations that failed while the registry stayed in use

	pushed, pulled atomic.Int64
}

// New returns the cache for ref (<registry>/<repository>, e.g.
// ghcr.io/halvm/cache or 127.0.0.1:5000/halvm-cache; loopback registries
// are spoken to over plain http). Warnings go to warn (nil: discarded).
func New(ref string, warn io.Writer) (*Cache, error) {
	repo, err := name.NewRepository(ref, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("HALVM_CACHE_REGISTRY=%q: want <registry>/<repository>: %w", ref, err)
	}
	if warn == nil {
		warn = io.Discard
	}
	return &Cache{repo: repo, warn: warn}, nil
}

// String is the repository.
func (c *Cache) String() string { return c.repo.String() }

// Pushed and Pulled are the bytes this cache sent and received (manifests,
// configs and blobs; blobs the registry already had are not sent).
func (c *Cache) Pushed() int64 { return c.pushed.Load() }
func (c *Cache) Pulled() int64 { return c.pulled.Load() }

// Down is the failure that made the cache local-only (nil while usable).
func (c *Cache) Down() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down
}

// StepTag is the tag of a step key: step-<key> when the key is a sha256
// hex (the toolchain's are), else step-<sha256 of the key>.
func StepTag(key string) string {
	if hexRE.MatchString(key) {
		return "step-" + key
	}
	sum := sha256.Sum256([]byte(key))
	return "step-" + hex.EncodeToString(sum[:])
}

// InputTag is the tag of an input by its sha256.
func InputTag(sha string) string { return "sha256-" + sha }

var hexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// fail makes the cache local-only after a registry failure, warning once.
func (c *Cache) fail(op string, err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down == nil {
		c.down = fmt.Errorf("%s: %w", op, err)
		fmt.Fprintf(c.warn, "warning: cache registry %s is unusable (%s: %v): carrying on with the local cache only; nothing is pushed or pulled for the rest of this run\n", c.repo, op, err)
	}
	return c.down
}

func (c *Cache) http(ctx context.Context) (*http.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down != nil {
		return nil, c.down
	}
	if c.client != nil {
		return c.client, nil
	}
	auth, err := authn.DefaultKeychain.Resolve(c.repo)
	if err != nil {
		auth = authn.Anonymous
	}
	t, err := transport.NewWithContext(ctx, c.repo.Registry, auth, http.DefaultTransport, []string{c.repo.Scope(transport.PushScope)})
	if err != nil {
		return nil, err
	}
	c.client = &http.Client{Transport: t}
	return c.client, nil
}

func (c *Cache) url(path string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s", c.repo.Registry.Scheme(), c.repo.RegistryStr(), c.repo.RepositoryStr(), path)
}

// request is one registry request.
type request struct {
	op, method, url string
	body            []byte                        // sent as is (nil: none)
	file            func() (io.ReadCloser, error) // or opened per attempt
	size            int64                         // of file
	header          map[string]string
	ok              []int // the statuses that are an answer
	once            bool  // never retried (a PUT into an upload session)
}

// maxSkips is how many failed operations make the registry unusable for
// the rest of the run.
const maxSkips = 5

// do sends a request, retrying transient failures (transport errors, 5xx,
// 429) with backoff. A registry that stays unreachable, or refuses access
// (401, 403), makes the cache local-only with one warning; another failure
// skips this operation with a warning (the registry stays in use).
func (c *Cache) do(ctx context.Context, r request) (*http.Response, error) {
	cl, err := c.http(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if c.Down() == nil {
			return nil, c.fail(r.op, err)
		}
		return nil, err
	}
	var last error
	transport := false
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			if r.once {
				break
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
			}
		}
		var body io.Reader
		var size int64
		switch {
		case r.body != nil:
			body, size = bytes.NewReader(r.body), int64(len(r.body))
		case r.file != nil:
			f, err := r.file()
			if err != nil {
				return nil, err
			}
			defer f.Close()
			body, size = f, r.size
		}
		req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
		if err != nil {
			return nil, err
		}
		if body != nil {
			req.ContentLength = size
		}
		for k, v := range r.header {
			req.Header.Set(k, v)
		}
		resp, err := cl.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			last, transport = err, true
			continue
		}
		for _, s := range r.ok {
			if resp.StatusCode == s {
				return resp, nil
			}
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		last, transport = fmt.Errorf("%s %s: %s %s", r.method, r.url, resp.Status, strings.TrimSpace(string(msg))), false
		switch {
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return nil, c.fail(r.op, last)
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
			continue
		}
		break
	}
	if transport {
		return nil, c.fail(r.op, last)
	}
	return nil, c.skip(r.op, last)
}

// skip warns that one operation failed while the registry stays in use.
func (c *Cache) skip(op string, err error) error {
	c.mu.Lock()
	c.skips++
	n := c.skips
	c.mu.Unlock()
	if n >= maxSkips {
		return c.fail(op, fmt.Errorf("%w (and %d failures before)", err, n-1))
	}
	fmt.Fprintf(c.warn, "warning: cache registry %s: %s failed (%v): carrying on without it\n", c.repo, op, err)
	return fmt.Errorf("%s: %w", op, err)
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        descriptor        `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Artifact is one cache entry to push.
type Artifact struct {
	Tag          string
	ArtifactType string
	ConfigType   string
	Config       []byte // JSON
	LayerType    string
	Layer        string // path of the blob's file
	Annotations  map[string]string
}

// Push uploads a's blobs (those the registry lacks), then its manifest
// under its tag, then reads the tag back and checks that it names a
// complete entry of the same artifact type and annotations (a concurrent
// push of the same key may have won: its entry is as good). A registry
// failure is warned about once and returned; callers carry on.
func (c *Cache) Push(ctx context.Context, a Artifact) error {
	if c.Down() != nil {
		return c.Down()
	}
	cfg := descriptor{MediaType: a.ConfigType, Digest: digestOf(a.Config), Size: int64(len(a.Config))}
	if err := c.pushBlob(ctx, cfg.Digest, cfg.Size, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(a.Config)), nil }); err != nil {
		return err
	}
	size, sum, err := fsutil.HashFile(a.Layer)
	if err != nil {
		return fmt.Errorf("pushing %s: %w", a.Tag, err)
	}
	layer := descriptor{MediaType: a.LayerType, Digest: "sha256:" + sum, Size: size,
		Annotations: map[string]string{"org.opencontainers.image.title": filepath.Base(a.Layer)}}
	if err := c.pushBlob(ctx, layer.Digest, size, func() (io.ReadCloser, error) { return os.Open(a.Layer) }); err != nil {
		return err
	}
	m := manifest{SchemaVersion: 2, MediaType: manifestType, ArtifactType: a.ArtifactType, Config: cfg, Layers: []descriptor{layer}, Annotations: a.Annotations}
	raw, _ := json.Marshal(m)
	resp, err := c.do(ctx, request{op: "pushing " + a.Tag, method: http.MethodPut, url: c.url("manifests/" + a.Tag), body: raw,
		header: map[string]string{"Content-Type": manifestType}, ok: []int{http.StatusCreated, http.StatusOK}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	c.pushed.Add(int64(len(raw)))
	// Verify: the tag names a complete entry of this kind and key.
	got, _, err := c.manifest(ctx, a.Tag)
	if err != nil {
		return err
	}
	if got == nil || got.ArtifactType != a.ArtifactType || !sameAnnotations(got.Annotations, a.Annotations) {
		return c.skip("verifying "+a.Tag, errors.New("the tag does not name the entry just pushed (nor an equivalent one)"))
	}
	for _, d := range append([]descriptor{got.Config}, got.Layers...) {
		if ok, err := c.hasBlob(ctx, d.Digest); err != nil {
			return err
		} else if !ok {
			return c.skip("verifying "+a.Tag, fmt.Errorf("blob %s is missing after the push", d.Digest))
		}
	}
	return nil
}

func sameAnnotations(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func (c *Cache) hasBlob(ctx context.Context, digest string) (bool, error) {
	resp, err := c.do(ctx, request{op: "checking blob " + digest, method: http.MethodHead, url: c.url("blobs/" + digest), ok: []int{http.StatusOK, http.StatusNotFound}})
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

// pushBlob uploads one blob monolithically unless the registry has it,
// starting again (a fresh upload session) when an attempt fails while the
// registry stays in use: another runner may be uploading the same blob.
func (c *Cache) pushBlob(ctx context.Context, digest string, size int64, open func() (io.ReadCloser, error)) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = c.pushBlobOnce(ctx, digest, size, open); err == nil || c.Down() != nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (c *Cache) pushBlobOnce(ctx context.Context, digest string, size int64, open func() (io.ReadCloser, error)) error {
	if ok, err := c.hasBlob(ctx, digest); err != nil || ok {
		return err
	}
	resp, err := c.do(ctx, request{op: "starting the upload of " + digest, method: http.MethodPost, url: c.url("blobs/uploads/"), ok: []int{http.StatusAccepted}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return c.skip("uploading "+digest, fmt.Errorf("no upload location: %w", err))
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	resp, err = c.do(ctx, request{op: "uploading " + digest, method: http.MethodPut, url: loc.String(), file: open, size: size,
		header: map[string]string{"Content-Type": "application/octet-stream"}, ok: []int{http.StatusCreated}, once: true})
	if err != nil {
		return err
	}
	resp.Body.Close()
	c.pushed.Add(size)
	return nil
}

// manifest reads the manifest a tag names; nil when the tag is absent.
func (c *Cache) manifest(ctx context.Context, tag string) (*manifest, []byte, error) {
	resp, err := c.do(ctx, request{op: "reading " + tag, method: http.MethodGet, url: c.url("manifests/" + tag),
		header: map[string]string{"Accept": manifestType}, ok: []int{http.StatusOK, http.StatusNotFound}})
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil, nil
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, c.fail("reading "+tag, err)
	}
	c.pulled.Add(int64(len(raw)))
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, c.discard(tag, fmt.Errorf("its manifest is not JSON: %w", err))
	}
	return &m, raw, nil
}

// Has reports whether the registry holds tag as an artifact of the given
// type (false when the registry is down).
func (c *Cache) Has(ctx context.Context, tag, artifactType string) bool {
	if c.Down() != nil {
		return false
	}
	resp, err := c.do(ctx, request{op: "looking up " + tag, method: http.MethodHead, url: c.url("manifests/" + tag),
		header: map[string]string{"Accept": manifestType}, ok: []int{http.StatusOK, http.StatusNotFound}})
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// discard warns about an entry that does not match its digest. The
// rebuilt entry is pushed under the same tag; a registry keeps a damaged
// blob whose digest comes back byte-identical (an upload of a digest it
// has does not replace it) until its operator deletes it and collects
// garbage: until then every runner discards it and rebuilds, never uses it.
func (c *Cache) discard(tag string, why error) error {
	fmt.Fprintf(c.warn, "warning: cache registry %s: entry %s discarded, it will be rebuilt (if this repeats, the registry holds a damaged blob: delete it there): %v\n", c.repo, tag, why)
	return fmt.Errorf("%w: %s: %w", ErrCorrupt, tag, why)
}

// Pull fetches the entry tag names: its config (returned) and its one blob,
// written to dst (atomically, only once its sha256 matched). found is false
// when the registry lacks the tag or is down; an entry of another artifact
// type, or whose content does not match its digests, is discarded with a
// warning (err wraps ErrCorrupt) and the caller rebuilds.
func (c *Cache) Pull(ctx context.Context, tag, artifactType, dst string) (config []byte, found bool, err error) {
	if c.Down() != nil {
		return nil, false, nil
	}
	m, _, err := c.manifest(ctx, tag)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, false, err
		}
		return nil, false, nil
	}
	if m == nil {
		return nil, false, nil
	}
	if m.ArtifactType != artifactType || len(m.Layers) != 1 {
		return nil, false, c.discard(tag, fmt.Errorf("artifact type %q with %d blobs, want %q with one", m.ArtifactType, len(m.Layers), artifactType))
	}
	var cfg bytes.Buffer
	if err := c.pullBlob(ctx, tag, m.Config, &cfg); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".pull-*")
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp.Name())
	err = c.pullBlob(ctx, tag, m.Layers[0], tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return nil, false, err
	}
	return cfg.Bytes(), true, nil
}

// pullBlob copies a blob to w, checking its size and sha256.
func (c *Cache) pullBlob(ctx context.Context, tag string, d descriptor, w io.Writer) error {
	if !strings.HasPrefix(d.Digest, "sha256:") || !hexRE.MatchString(strings.TrimPrefix(d.Digest, "sha256:")) {
		return c.discard(tag, fmt.Errorf("blob digest %q is not sha256", d.Digest))
	}
	resp, err := c.do(ctx, request{op: "reading blob " + d.Digest, method: http.MethodGet, url: c.url("blobs/" + d.Digest), ok: []int{http.StatusOK, http.StatusNotFound}})
	if err != nil {
		return fmt.Errorf("pulling %s: %w", tag, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return c.discard(tag, fmt.Errorf("blob %s is missing", d.Digest))
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(resp.Body, d.Size+1))
	c.pulled.Add(n)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) || ctx.Err() != nil {
			return fmt.Errorf("pulling %s: %w", tag, c.fail("reading blob "+d.Digest, err))
		}
		return fmt.Errorf("pulling %s: %w", tag, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d.Digest || n != d.Size {
		return c.discard(tag, fmt.Errorf("blob %s: received %d bytes with digest %s (the manifest says %d bytes): the content does not match its digest", d.Digest, n, got, d.Size))
	}
	return nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
