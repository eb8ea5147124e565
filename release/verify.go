package release

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/repos"
	"github.com/halvm/halvm-release/sbom"
)

func (r *runner) verify(ctx context.Context, p pipeline.Plan, l *pipeline.Ledger) error {
	c := r.reposConfig(p)
	apt, dnf := c.StagedDirs(r.staged)
	if err := (repos.Apt{Config: c}).Verify(apt); err != nil {
		return fmt.Errorf("staged apt repository: %w", err)
	}
	if err := (repos.Dnf{Config: c}).Verify(dnf); err != nil {
		return fmt.Errorf("staged dnf repository: %w", err)
	}
	for _, fl := range p.Flavours() {
		docs := map[pipeline.Kind][]byte{}
		for _, k := range []pipeline.Kind{pipeline.KindSPDX, pipeline.KindCycloneDX, pipeline.KindProvenance} {
			a := l.Find(k, fl)
			if len(a) != 1 {
				return fmt.Errorf("%s of %s: want one in the ledger, found %d", k, fl, len(a))
			}
			b, err := os.ReadFile(filepath.Join(p.OutDir(), a[0].Path))
			if err != nil {
				return err
			}
			docs[k] = b
		}
		if probs := sbom.Check(r.o.Lock, l, docs[pipeline.KindSPDX], docs[pipeline.KindCycloneDX], docs[pipeline.KindProvenance]); len(probs) > 0 {
			var lines []string
			for _, pr := range probs {
				lines = append(lines, pr.Error())
			}
			return fmt.Errorf("SBOM consistency of %s: %d problem(s):\n  %s", fl, len(probs), strings.Join(lines, "\n  "))
		}
	}
	return nil
}
