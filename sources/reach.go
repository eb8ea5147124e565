package sources

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/halvm/halvm-release/pins"
)

// Unreachable is every pinned input of l that is neither in the cache
// (o.CacheDir) nor fetchable from where Fetch would take it (the mirror
// directory, or its URL after the lock's rewrites and o.MirrorMap): a
// pending pin, a git commit whose repository does not answer, a file or
// Debian package that is not there. It fetches nothing: it is the check a
// rebuild makes before building, so that whatever it cannot reach is
// named, every one at once, and no verdict is claimed for what depends on
// it. Inputs in the cache are not hashed here: the fetch verifies them.
// toFetch names the inputs that are not cached but answer.
func Unreachable(ctx context.Context, l *pins.Lock, o Options) (gaps []Gap, toFetch []string) {
	o, err := o.normalized()
	if err != nil {
		return []Gap{{Input: "(all inputs)", Reason: err.Error(), Remedy: "give an existing input cache and mirror"}}, nil
	}
	gap := func(input, where string, err error) {
		if err == nil {
			toFetch = append(toFetch, input)
			return
		}
		gaps = append(gaps, Gap{Input: input, Reason: fmt.Sprintf("not in the input cache %s, and %s does not answer: %v", o.CacheDir, where, err),
			Remedy: "put it in the input cache (fetch on a machine that reaches it), serve it from a mirror (HALVM_MIRROR), or rebuild where " + where + " is reachable"})
	}
	g := newGit(l.Rewrites)
	f := &gitFetcher{o: o, l: l, g: g}
	for _, s := range l.Sources {
		if _, err := g.out(ctx, f.repo(s), "rev-parse", "-q", "--verify", "refs/pins/"+s.Commit+"^{commit}"); err == nil {
			continue
		}
		from, err := f.gitURL(s)
		if err == nil {
			err = probeGit(ctx, g, from)
		}
		gap(LedgerName("git", s.Name), from, err)
	}
	for _, fl := range l.Files {
		if fl.Pending != "" {
			gaps = append(gaps, Gap{Input: LedgerName("file", fl.Name), Reason: "its pin is pending (" + fl.Pending + ")",
				Remedy: fmt.Sprintf("run `go run mage.go pins:update file:%s` on a machine that reaches %s", fl.Name, fl.URL)})
			continue
		}
		if o.cached(fl.SHA256, fl.Size) {
			continue
		}
		from := mapURL(o.MirrorMap, fl.URL)
		if o.MirrorDir != "" {
			base, _ := urlBase(fl.URL)
			from = filepath.Join(o.MirrorDir, "files", base)
		}
		gap(LedgerName("file", fl.Name), from, probe(ctx, o, from))
	}
	var archives map[string]string
	for _, d := range l.Debs {
		if o.cached(d.SHA256, d.Size) {
			continue
		}
		from := filepath.Join(o.MirrorDir, d.Archive, filepath.FromSlash(d.Filename))
		if o.MirrorDir == "" {
			if archives == nil {
				if archives = o.DebArchives; archives == nil {
					root := o.AptRoot
					if root == "" {
						root = "/"
					}
					if archives, err = AptArchives(root); err != nil {
						archives = map[string]string{}
					}
				}
			}
			base, ok := archives[d.Archive]
			if !ok {
				gaps = append(gaps, Gap{Input: LedgerName("deb", DebName(d)), Reason: "not in the input cache " + o.CacheDir + ", and no URI is configured for the Debian archive " + d.Archive,
					Remedy: "add the archive to apt's sources, or serve the package from a mirror (HALVM_MIRROR)"})
				continue
			}
			for len(base) > 0 && base[len(base)-1] == '/' {
				base = base[:len(base)-1]
			}
			from = mapURL(o.MirrorMap, base+"/"+d.Filename)
		}
		gap(LedgerName("deb", DebName(d)), from, probe(ctx, o, from))
	}
	return gaps, toFetch
}

// InputNames are the ledger names of every input l pins: git:<source>,
// file:<name>, deb:<name>_<version>_<arch>, in lock order.
func InputNames(l *pins.Lock) []string {
	var out []string
	for _, s := range l.Sources {
		out = append(out, LedgerName("git", s.Name))
	}
	for _, f := range l.Files {
		out = append(out, LedgerName("file", f.Name))
	}
	for _, d := range l.Debs {
		out = append(out, LedgerName("deb", DebName(d)))
	}
	return out
}

// cached says whether the cache holds a file of the pinned size under the
// pinned sha256 (the fetch hashes it before use).
func (o Options) cached(sum string, size int64) bool {
	fi, err := os.Stat(o.cache("sha256", sum))
	return err == nil && fi.Mode().IsRegular() && (size == 0 || fi.Size() == size)
}

// probe checks that the file at u (a path, file:// or http(s):// URL)
// exists, without downloading it.
func probe(ctx context.Context, o Options, u string) error {
	if filepath.IsAbs(u) {
		_, err := os.Stat(u)
		return err
	}
	p, err := url.Parse(u)
	if err != nil {
		return err
	}
	switch p.Scheme {
	case "file":
		_, err := os.Stat(filepath.FromSlash(p.Path))
		return err
	case "http", "https":
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		resp, err := o.request(ctx, http.MethodHead, u)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	return fmt.Errorf("URL scheme %q is not supported (want file, http or https)", p.Scheme)
}

// probeGit checks that the git repository at u answers (with the lock's
// rewrites applied by g).
func probeGit(ctx context.Context, g git, u string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	_, err := g.out(ctx, "", "ls-remote", "-q", "--heads", u)
	return err
}
