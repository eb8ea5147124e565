package checks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/pipeline"
	"github.com/halvm/halvm-release/internal/run"
	"github.com/halvm/halvm-release/verify"
)

// Names of the image checks.
func CheckImageRun(flavour string) string  { return "image-run-" + flavour }
func CheckImageBoot(flavour string) string { return "xen-boot-image-" + flavour }

func dockerEnv() []string {
	return run.BaseEnv(run.Inherit("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")...)
}

func docker(ctx context.Context, args ...string) (string, error) {
	out, err := run.Output(ctx, run.Cmd{Args: append([]string{"docker"}, args...), Env: dockerEnv()})
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// pulledImage pulls the flavour's image by the digest the ledger records
// and checks docker has exactly that digest.
func pulledImage(ctx context.Context, env *verify.Env, flavour string) (string, error) {
	imgs, err := env.Artifacts(pipeline.KindOCIImage, flavour)
	if err != nil {
		return "", err
	}
	a := imgs[0]
	if a.Ref == "" {
		return "", fmt.Errorf("image %s was not pushed (no Ref in the ledger): the image checks pull it from the registry by digest; push it (HALVM_REGISTRY)", a.Name)
	}
	if !strings.HasSuffix(a.Ref, "@sha256:"+a.SHA256) {
		return "", fmt.Errorf("image %s: ref %s is not the ledger's digest sha256:%s", a.Name, a.Ref, a.SHA256)
	}
	if _, err := docker(ctx, "pull", "-q", a.Ref); err != nil {
		return "", err
	}
	got, err := docker(ctx, "image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", a.Ref)
	if err != nil {
		return "", err
	}
	if !strings.Contains(got, "@sha256:"+a.SHA256) {
		return "", fmt.Errorf("docker pulled %s but reports digests %q", a.Ref, strings.TrimSpace(got))
	}
	return a.Ref, nil
}

// noToolchain names what docker's exit status 127 means for a run of
// halvm-ghc (no such program in the container): the image does not hold
// the toolchain. Other failures are returned as they are.
func noToolchain(ref string, err error) error {
	var re *run.Error
	if errors.As(err, &re) && re.Exit == 127 {
		return fmt.Errorf("the image %s does not hold the toolchain: halvm-ghc is not on its PATH (docker run exits 127): %w", ref, err)
	}
	return err
}

// compileInImage compiles the program with `halvm-ghc --make` in a
// container of ref (no network) with dir mounted, and returns the kernel.
func compileInImage(ctx context.Context, ref, dir string, p Program) (string, error) {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o777); err != nil { // the container's user may not be root
		return "", err
	}
	if err := writeReadable(filepath.Join(dir, p.Source), p.Text); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return "", err
	}
	if out, err := docker(ctx, "run", "--rm", "--network", "none", "-v", dir+":/src", "-w", "/src", ref, "halvm-ghc", "--make", p.Source); err != nil {
		return "", fmt.Errorf("compiling %s in the image: %w\n%s", p.Source, err, out)
	}
	kernel := filepath.Join(dir, strings.TrimSuffix(p.Source, filepath.Ext(p.Source)))
	b, err := os.ReadFile(kernel)
	if err != nil {
		return "", fmt.Errorf("halvm-ghc --make %s in the image wrote no kernel: %w", p.Source, err)
	}
	if len(b) < 4 || string(b[:4]) != "\x7fELF" {
		return "", fmt.Errorf("halvm-ghc --make %s in the image wrote %s, which is not an ELF kernel", p.Source, kernel)
	}
	return kernel, nil
}

func imageChecks(c Config) []verify.Check {
	var out []verify.Check
	progs := c.Programs
	if progs == nil {
		progs = DefaultPrograms()
	}
	hello := progs[0]
	for _, fl := range c.Flavours {
		fl := fl
		out = append(out, verify.Check{
			Name: CheckImageRun(fl), Family: verify.Image, Required: c.requiredUnless("image"),
			Doc:     "docker pulls the " + fl + " image by its ledger digest from the registry, and halvm-ghc --make compiles Hello.hs in it (no network, mounted directory) into an ELF kernel",
			Needs:   []verify.Prereq{verify.NeedDocker(), c.stageRan("image")},
			After:   []string{CheckImageSignatures},
			Timeout: 5 * time.Minute,
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				ref, err := pulledImage(ctx, env, fl)
				if err != nil {
					return verify.Evidence{}, err
				}
				ver, err := docker(ctx, "run", "--rm", "--network", "none", ref, "halvm-ghc", "--version")
				if err != nil {
					return verify.Evidence{}, noToolchain(ref, err)
				}
				kernel, err := compileInImage(ctx, ref, filepath.Join(env.Scratch, "src"), hello)
				if err != nil {
					return verify.Evidence{}, err
				}
				fi, _ := os.Stat(kernel)
				return verify.Checked(2, "pulled %s; %s; halvm-ghc --make %s in it wrote a %d-byte ELF kernel", ref, firstLineOf(strings.TrimSpace(ver)), hello.Source, fi.Size()), nil
			},
		})
		out = append(out, verify.Check{
			Name: CheckImageBoot(fl), Family: verify.Boot, Required: c.requiredUnless("image"),
			Doc: "Hello compiled inside the " + fl + " image boots on Xen (QEMU) with the expected output and a clean shutdown",
			Needs: []verify.Prereq{verify.NeedDocker(), c.stageRan("image"),
				verify.NeedCommand("qemu-system-x86", "qemu-system-x86_64")},
			After:   []string{CheckImageRun(fl)},
			Timeout: 10 * time.Minute,
			Run: func(ctx context.Context, env *verify.Env) (verify.Evidence, error) {
				ref, err := pulledImage(ctx, env, fl)
				if err != nil {
					return verify.Evidence{}, err
				}
				kernel, err := compileInImage(ctx, ref, filepath.Join(env.Scratch, "src"), hello)
				if err != nil {
					return verify.Evidence{}, err
				}
				m, err := machine(ctx, env)
				if err != nil {
					return verify.Evidence{}, err
				}
				details, err := bootOne(ctx, m, kernel, "image-"+fl+"-hello", hello)
				ev := verify.Evidence{Details: details}
				if err != nil {
					return ev, err
				}
				ev.Checked = 1
				ev.Summary = fmt.Sprintf("%s compiled in %s booted on Xen and printed %q", hello.Source, ref, hello.Expect)
				return ev, nil
			},
		})
	}
	return out
}
