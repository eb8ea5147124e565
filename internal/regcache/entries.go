package regcache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Annotations of the cache's manifests.
const (
	AnnotationStepKey   = "dev.halvm.step.key"
	AnnotationStepName  = "dev.halvm.step.name"
	AnnotationInputHash = "dev.halvm.input.sha256"
)

// PushStep pushes a toolchain step's output: its snapshot tar and its
// metadata (the step, its root and the components of its key: the recipe)
// as the config, tagged StepTag(key).
func (c *Cache) PushStep(ctx context.Context, key, step string, meta []byte, tarPath string) error {
	return c.Push(ctx, Artifact{Tag: StepTag(key), ArtifactType: StepArtifactType, ConfigType: StepConfigType, Config: meta,
		LayerType: StepLayerType, Layer: tarPath, Annotations: map[string]string{AnnotationStepKey: key, AnnotationStepName: step}})
}

// PullStep pulls a step's snapshot tar to tarDst and returns its metadata;
// found is false when the registry lacks it (or is down). An entry that
// does not match its digests, or is the entry of another key, is discarded
// with a warning (ErrCorrupt).
func (c *Cache) PullStep(ctx context.Context, key, tarDst string) (meta []byte, found bool, err error) {
	return c.Pull(ctx, StepTag(key), StepArtifactType, tarDst)
}

// HasStep reports whether the registry holds a step's output.
func (c *Cache) HasStep(ctx context.Context, key string) bool {
	return c.Has(ctx, StepTag(key), StepArtifactType)
}

type inputConfig struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	What   string `json:"what"`
}

// PushInput pushes a verified input (a pinned file or package) by its
// sha256.
func (c *Cache) PushInput(ctx context.Context, sha256 string, size int64, what, path string) error {
	cfg, _ := json.Marshal(inputConfig{SHA256: sha256, Size: size, What: what})
	return c.Push(ctx, Artifact{Tag: InputTag(sha256), ArtifactType: InputArtifactType, ConfigType: InputConfigType, Config: cfg,
		LayerType: InputLayerType, Layer: path, Annotations: map[string]string{AnnotationInputHash: sha256}})
}

// PullInput pulls the input of the given sha256 to dst. The blob's digest
// must be that sha256: anything else is discarded (ErrCorrupt).
func (c *Cache) PullInput(ctx context.Context, sha256, dst string) (found bool, err error) {
	cfg, found, err := c.Pull(ctx, InputTag(sha256), InputArtifactType, dst)
	if err != nil || !found {
		return false, err
	}
	var ic inputConfig
	if json.Unmarshal(cfg, &ic) != nil || ic.SHA256 != sha256 {
		return false, c.discard(InputTag(sha256), errors.New("its config names another input"))
	}
	return true, nil
}

// Summary is a one-line account of the traffic, for logs and reports.
func (c *Cache) Summary() string {
	s := fmt.Sprintf("cache registry %s: %d bytes pushed, %d bytes pulled", c.repo, c.Pushed(), c.Pulled())
	if err := c.Down(); err != nil {
		s += " (unusable: " + err.Error() + ")"
	}
	return s
}
