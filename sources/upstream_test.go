package sources

import (
	"context"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/pins"
	"github.com/halvm/halvm-release/sample"
)

func TestVerifyUpstreamOnTheSample(t *testing.T) {
	u, err := sample.Generate(context.Background(), t.TempDir(), sample.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{DebArchives: map[string]string{}}
	l := *u.Lock
	l.Debs = nil // the sample pins no Debian packages of its own
	if err := VerifyUpstream(context.Background(), &l, pins.HostResolver{}, o); err != nil {
		t.Fatal(err)
	}
	// The sample's commits carry the lock's epoch; a different epoch is caught.
	l.Release.SourceDateEpoch++
	err = VerifyUpstream(context.Background(), &l, pins.HostResolver{}, o)
	if err == nil || !strings.Contains(err.Error(), "pins:update epoch") {
		t.Fatalf("wrong epoch not caught: %v", err)
	}
}
