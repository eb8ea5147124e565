package toolchain

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halvm/halvm-release/internal/regcache"
	"github.com/halvm/halvm-release/internal/regcache/regtest"
	"github.com/halvm/halvm-release/internal/testenv"
)

// TestSharedStepCache builds one flavour of the sample toolchain into a
// real registry (docker-registry) from one local cache, then restores it
// with empty local caches: (a) all hits, the same tree; (b) a damaged blob
// is discarded, warned about and its step rebuilt, the same tree; (d) with
// the registry down the build runs locally and warns once.
func TestSharedStepCache(t *testing.T) {
	testenv.Short(t, "building the sample toolchain")
	if err := Preflight(context.Background()); err != nil {
		testenv.Unavailable(t, err.Error(), "install the packages it names")
	}
	srv := regtest.Start(t)
	ctx := context.Background()
	base := t.TempDir()
	lock := sampleUpstream(t, filepath.Join(base, "upstream"))
	ref := srv.Addr + "/halvm/cache"
	build := func(name string) (*Result, *regcache.Cache, string, []byte) {
		t.Helper()
		var log bytes.Buffer
		reg, err := regcache.New(ref, &log)
		if err != nil {
			t.Fatal(err)
		}
		// Every "runner" starts from an empty build dir at the same fixed path.
		if err := os.RemoveAll(filepath.Join(base, "build")); err != nil {
			t.Fatal(err)
		}
		c := Config{Lock: lock, Flavour: "halvm", BuildDir: filepath.Join(base, "build"), CacheDir: filepath.Join(base, name),
			FileCacheDir: testCache(t), OutDir: filepath.Join(base, name, "out"), Registry: reg, Log: &log}
		start := time.Now()
		res, err := Build(ctx, c)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, log.String())
		}
		t.Logf("%s: %s, ran %d steps, pulled %v, %d bytes pushed, %d pulled", name, time.Since(start).Round(time.Millisecond), len(res.Ran), res.Pulled, reg.Pushed(), reg.Pulled())
		m, err := os.ReadFile(res.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		return res, reg, log.String(), m
	}

	a, regA, _, manifest := build("a")
	if len(a.Ran) == 0 || regA.Pushed() == 0 {
		t.Fatalf("a: ran %v, pushed %d bytes: want a cold build pushed to the registry", a.Ran, regA.Pushed())
	}

	// (a) another runner, empty local cache: every step hits, same tree.
	b, regB, _, got := build("b")
	if len(b.Ran) != 0 || len(b.Pulled) == 0 || regB.Pushed() != 0 {
		t.Errorf("b: ran %v, pulled %v, pushed %d bytes: want 100%% hits from the registry", b.Ran, b.Pulled, regB.Pushed())
	}
	if !bytes.Equal(got, manifest) {
		t.Error("b: the tree restored from the registry differs from the built one")
	}

	// (b) damage the blob of a step the restore needs, in the registry's
	// storage: discarded with a warning, the step rebuilt, the same tree.
	victim := b.Pulled[len(b.Pulled)-1]
	r, err := NewRecipe(Config{Lock: lock, Flavour: "halvm", BuildDir: filepath.Join(base, "build"), CacheDir: filepath.Join(base, "a"), FileCacheDir: testCache(t)}, ProbeHost(ctx))
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := r.Keys()
	blob := layerDigest(t, srv, ref, keys[victim])
	if err := os.WriteFile(srv.BlobPath(blob), []byte("poisoned"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _, log, got := build("c")
	if strings.Join(c.Discarded, " ") != victim || !containsStr(c.Ran, victim) {
		t.Errorf("c: discarded %v, ran %v: want %s discarded and rebuilt", c.Discarded, c.Ran, victim)
	}
	if !strings.Contains(log, "warning: cache registry") || !strings.Contains(log, "does not match its digest") {
		t.Errorf("c: no warning about the damaged entry:\n%s", log)
	}
	if !bytes.Equal(got, manifest) {
		t.Error("c: the tree differs after rebuilding a discarded step")
	}

	// (d) registry down: the build runs on the local cache and warns once.
	srv.Stop()
	d, regD, log, got := build("a")
	if regD.Down() == nil || strings.Count(log, "warning: cache registry") != 1 || !strings.Contains(log, "carrying on with the local cache only") {
		t.Errorf("d: registry down, want one warning:\n%s", log)
	}
	if len(d.Ran) != 0 || !bytes.Equal(got, manifest) {
		t.Errorf("d: ran %v (want nothing: all in the local cache), same tree: %v", d.Ran, bytes.Equal(got, manifest))
	}
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// layerDigest reads the digest of a step entry's blob from the registry.
func layerDigest(t *testing.T, srv *regcache.Server, ref, key string) string {
	t.Helper()
	tag := regcache.StepTag(key)
	req, _ := http.NewRequest(http.MethodGet, "http://"+srv.Addr+"/v2/"+strings.TrimPrefix(ref, srv.Addr+"/")+"/manifests/"+tag, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || len(m.Layers) != 1 {
		t.Fatalf("manifest of %s: %v %+v", tag, err, m)
	}
	return m.Layers[0].Digest
}
