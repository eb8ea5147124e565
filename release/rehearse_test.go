package release

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/halvm/halvm-release/internal/regcache"
	"github.com/halvm/halvm-release/internal/testenv"
	"github.com/halvm/halvm-release/packaging"
	"github.com/halvm/halvm-release/toolchain"
)

// TestRehearsal runs the CI graph locally against Debian's docker-registry
// on the sample upstream, with one cell (halvm, Debian layout) run by two
// processes at once, each with its own local cache and private build path:
// (c) both push every step of the same keys at the same time and the
// registry keeps valid entries; (a) the release job, a third process with
// an empty local cache, restores the cell from the registry with 100 %
// step hits and the same tree manifest as the cells and the independent
// rebuild (a process with no shared cache, another build path).
func TestRehearsal(t *testing.T) {
	testenv.Short(t, "building the sample toolchain in three processes")
	testenv.NeedRoot(t)
	testenv.NeedCommand(t, "docker-registry", regcache.ServerCommand)
	testenv.NeedCommand(t, "util-linux", "unshare")
	if err := toolchain.Preflight(context.Background()); err != nil {
		testenv.Unavailable(t, err.Error(), "install the packages it names")
	}
	real, dir, cache := demoSetup(t)
	work := filepath.Join(t.TempDir(), "fixed-build-path")
	var log bytes.Buffer
	cell := CellSpec{"halvm", packaging.Deb}
	reh, err := Rehearse(context.Background(), RehearseOptions{RealLock: real, Dir: dir, DownloadCache: cache, WorkDir: work,
		Cells: []CellSpec{cell, cell}, Log: &log})
	if reh != nil {
		t.Logf("rehearsal:\n%s%s", reh.Summary(), log.String())
	}
	if err != nil {
		for _, j := range []string{"cell-1-halvm-deb", "cell-2-halvm-deb", "rebuild", "release"} {
			b, _ := os.ReadFile(filepath.Join(dir, "jobs", j, "log"))
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			t.Logf("%s log:\n%s", j, b)
		}
		t.Fatal(err)
	}
	for _, j := range reh.Cells {
		if len(j.Cells) != 1 || j.Cells[0].Ran == 0 && j.Cells[0].FromShared == 0 {
			t.Errorf("%s: %+v: want the cell built (or taken from the other's pushes)", j.Job, j.Cells)
		}
	}
	if pushed := reh.Cells[0].Cells[0].BytesPushed + reh.Cells[1].Cells[0].BytesPushed; pushed == 0 {
		t.Error("the cells pushed nothing")
	}
	rel := reh.Release.Cells
	if len(rel) != 1 || rel[0].Ran != 0 || rel[0].FromShared == 0 || rel[0].BytesPulled == 0 || rel[0].BytesPushed != 0 {
		t.Errorf("release job: %+v: want 100%% hits pulled from the registry, nothing pushed", rel)
	}
	if reh.Rebuild.Cells[0].FromShared != 0 || reh.Rebuild.Cells[0].BytesPulled != 0 {
		t.Errorf("the independent rebuild read the shared cache: %+v", reh.Rebuild.Cells)
	}
	if reh.Release.Warnings != "" {
		t.Errorf("release job warned: %s", reh.Release.Warnings)
	}
}
