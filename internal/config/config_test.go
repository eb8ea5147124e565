package config

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func envOf(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestLoadDefaults(t *testing.T) {
	cfg, lock, err := Load(envOf(map[string]string{"HALVM_LOCK": "../../pins/halvm.lock", "HALVM_CACHE": "/tmp/c"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != "2.4.3" || cfg.Release != 1 || cfg.Epoch.Unix() != lock.Release.SourceDateEpoch || cfg.OutDir != "dist" || len(cfg.Flavours) != 2 {
		t.Fatalf("cfg = %+v", cfg)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	_, _, err := Load(envOf(map[string]string{"HALVM_LOCK": "/nonexistent.lock", "HALVM_CACHE": "/tmp/c", "HALVM_RELEASE": "x", "HALVM_SKIP": "sign", "SOURCE_DATE_EPOCH": "1.5"}))
	if err == nil {
		t.Fatal("bad environment accepted")
	}
	for _, w := range []string{"reading lock file", `HALVM_RELEASE="x"`, `HALVM_SKIP: "sign": want stage=reason`, "SOURCE_DATE_EPOCH"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in %v", w, err)
		}
	}
}

func TestEpochOverride(t *testing.T) {
	cfg, _, err := Load(envOf(map[string]string{"HALVM_LOCK": "../../pins/halvm.lock", "HALVM_CACHE": "/tmp/c", "SOURCE_DATE_EPOCH": "86400", "HALVM_SKIP": "sign=no keys here; image = no registry"}))
	if err != nil || cfg.Epoch.Unix() != 86400 || cfg.Skip["image"] != "no registry" || cfg.Skip["sign"] != "no keys here" {
		t.Fatalf("cfg = %+v err = %v", cfg, err)
	}
}

func TestPrintVars(t *testing.T) {
	var b bytes.Buffer
	PrintVars(&b)
	if !strings.Contains(b.String(), "HALVM_LOCK") || !strings.Contains(b.String(), "SOURCE_DATE_EPOCH") {
		t.Fatal(b.String())
	}
}

func TestMirrorFromEnv(t *testing.T) {
	dir := t.TempDir()
	m, err := MirrorFromEnv(envOf(map[string]string{"HALVM_MIRROR": dir}))
	if err != nil || m.Dir != dir {
		t.Fatalf("%+v %v", m, err)
	}
	m, err = MirrorFromEnv(envOf(map[string]string{"HALVM_MIRROR": "https://github.com/=file:///srv/gh/; https://downloads.haskell.org/=http://mirror.internal/hs/"}))
	if err != nil || len(m.Map) != 2 || m.Map[1].To != "http://mirror.internal/hs/" {
		t.Fatalf("%+v %v", m, err)
	}
	for _, bad := range []string{"/nonexistent/dir", "a=;b"} {
		if _, err := MirrorFromEnv(envOf(map[string]string{"HALVM_MIRROR": bad})); err == nil {
			t.Errorf("HALVM_MIRROR=%q accepted", bad)
		}
	}
}

func TestInstallIsParsedStrictly(t *testing.T) {
	for v, want := range map[string]bool{"": true, "yes": true, "1": true, "no": false, "NO": false, "0": false, "false": false} {
		got, err := Install(func(string) string { return v })
		if err != nil || got != want {
			t.Errorf("HALVM_INSTALL=%q: %v, %v; want %v", v, got, err, want)
		}
	}
	for _, v := range []string{"maybe", "y", "2"} {
		if _, err := Install(func(string) string { return v }); err == nil || !strings.Contains(err.Error(), `HALVM_INSTALL="`+v+`"`) {
			t.Errorf("HALVM_INSTALL=%q accepted (%v)", v, err)
		}
	}
}

func TestOfficial(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "false": false, "no": false, "NO": false, "1": true, "true": true, "yes": true, "True": true} {
		got, err := Official(envOf(map[string]string{"HALVM_OFFICIAL": v}))
		if err != nil || got != want {
			t.Errorf("HALVM_OFFICIAL=%q: %v, %v; want %v", v, got, err, want)
		}
	}
	for _, v := range []string{"maybe", "2", "on", "y"} {
		if _, err := Official(envOf(map[string]string{"HALVM_OFFICIAL": v})); err == nil || !strings.Contains(err.Error(), `HALVM_OFFICIAL="`+v+`"`) {
			t.Errorf("HALVM_OFFICIAL=%q: %v, want an error naming the value", v, err)
		}
	}
	var b bytes.Buffer
	PrintVars(&b)
	for _, name := range []string{"HALVM_OFFICIAL", "HALVM_KEEP"} {
		if !strings.Contains(b.String(), name) {
			t.Errorf("mage env does not list %s", name)
		}
	}
}

func TestKeep(t *testing.T) {
	if n, err := Keep(envOf(nil)); err != nil || n != 5 {
		t.Fatalf("default keep: %d %v", n, err)
	}
	if n, err := Keep(envOf(map[string]string{"HALVM_KEEP": "3"})); err != nil || n != 3 {
		t.Fatalf("HALVM_KEEP=3: %d %v", n, err)
	}
	for _, v := range []string{"1", "x", "-4"} {
		if _, err := Keep(envOf(map[string]string{"HALVM_KEEP": v})); err == nil {
			t.Errorf("HALVM_KEEP=%q accepted", v)
		}
	}
}

func TestLayoutsAndCacheRegistry(t *testing.T) {
	env := envOf
	got, err := Layouts(env(nil))
	if err != nil || fmt.Sprint(got) != "[deb rpm]" {
		t.Errorf("default layouts: %v %v", got, err)
	}
	got, err = Layouts(env(map[string]string{"HALVM_LAYOUTS": " rpm "}))
	if err != nil || fmt.Sprint(got) != "[rpm]" {
		t.Errorf("HALVM_LAYOUTS=rpm: %v %v", got, err)
	}
	for _, bad := range []string{"deb,msi", ","} {
		if _, err := Layouts(env(map[string]string{"HALVM_LAYOUTS": bad})); err == nil || !strings.Contains(err.Error(), "HALVM_LAYOUTS") {
			t.Errorf("HALVM_LAYOUTS=%q: %v", bad, err)
		}
	}
	if c, err := CacheRegistry(env(nil), nil); c != nil || err != nil {
		t.Errorf("unset: %v %v", c, err)
	}
	if c, err := CacheRegistry(env(map[string]string{CacheRegistryVar: "127.0.0.1:5000/halvm/cache"}), nil); c == nil || err != nil || c.String() != "127.0.0.1:5000/halvm/cache" {
		t.Errorf("set: %v %v", c, err)
	}
	if _, err := CacheRegistry(env(map[string]string{CacheRegistryVar: "127.0.0.1:5000/halvm/cache:tag"}), nil); err == nil || !strings.Contains(err.Error(), CacheRegistryVar) {
		t.Errorf("a tag: %v", err)
	}
}

func TestFreshIsParsedStrictly(t *testing.T) {
	for v, want := range map[string]string{"": "", "verify": "verify", " image , verify ": "image,verify", "all": "all"} {
		got, err := Fresh(envOf(map[string]string{"HALVM_FRESH": v}))
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("HALVM_FRESH=%q: %v, %v; want %s", v, got, err, want)
		}
	}
	for v, why := range map[string]string{"verify,": "is not a stage name", "Verify": "is not a stage name", "image;verify": "is not a stage name",
		"verify,verify": "listed twice", "all,verify": "list it alone", "1": "is not a stage name"} {
		if _, err := Fresh(envOf(map[string]string{"HALVM_FRESH": v})); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("HALVM_FRESH=%q: err = %v, want %q", v, err, why)
		}
	}
	cfg, _, err := Load(envOf(map[string]string{"HALVM_LOCK": "../../pins/halvm.lock", "HALVM_CACHE": "/tmp/c", "HALVM_FRESH": "image,verify"}))
	if err != nil || strings.Join(cfg.Fresh, ",") != "image,verify" {
		t.Fatalf("Load: fresh %v, err %v", cfg.Fresh, err)
	}
}
