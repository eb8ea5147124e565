package verify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/halvm/halvm-release/internal/run"
)

// Prereq is a host prerequisite of a check (a program, root, a Docker
// daemon, a file). It is evaluated just before the check would run.
type Prereq struct {
	// What names the prerequisite: "qemu-system-x86_64", "root", "docker".
	What string
	// Remedy says how to provide it: "apt-get install qemu-system-x86".
	Remedy string
	// Check returns nil when the prerequisite is there, else why not.
	Check func(ctx context.Context) error
	// Host prerequisites, for the release's preflight to see before any
	// stage runs (internal/hostreq): programs, root, a Docker daemon.
	Commands []string
	Root     bool
	Docker   bool
}

// prereqTimeout bounds one prerequisite evaluation (a docker daemon that
// does not answer must not hang the suite).
const prereqTimeout = 30 * time.Second

// NeedCommand requires programs on PATH; debPkg is the Debian package that
// provides them.
func NeedCommand(debPkg string, names ...string) Prereq {
	return Prereq{
		What:     strings.Join(names, ", "),
		Commands: names,
		Remedy:   "apt-get install " + debPkg,
		Check: func(context.Context) error {
			var missing []string
			for _, n := range names {
				if _, err := lookPath(n); err != nil {
					missing = append(missing, n)
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("%s not found in PATH", strings.Join(missing, ", "))
			}
			return nil
		},
	}
}

// NeedRoot requires uid 0 (chroots, rpm --root, debootstrap).
func NeedRoot() Prereq {
	return Prereq{
		What:   "root",
		Root:   true,
		Remedy: "run the verification as root (sudo go run mage.go verify)",
		Check: func(context.Context) error {
			if uid := os.Geteuid(); uid != 0 {
				return fmt.Errorf("running as uid %d", uid)
			}
			return nil
		},
	}
}

// NeedFile requires a file (e.g. /dev/kvm, a header) that debPkg provides;
// debPkg may be empty when no package does.
func NeedFile(path, debPkg string) Prereq {
	remedy := "provide " + path
	if debPkg != "" {
		remedy = "apt-get install " + debPkg
	}
	return Prereq{
		What:   path,
		Remedy: remedy,
		Check: func(context.Context) error {
			_, err := os.Stat(path)
			return err
		},
	}
}

// NeedDocker requires the docker client and a daemon that answers.
func NeedDocker() Prereq {
	return Prereq{
		What:   "docker",
		Docker: true,
		Remedy: "apt-get install docker.io and start the daemon (systemctl start docker), or set DOCKER_HOST",
		Check: func(ctx context.Context) error {
			if _, err := lookPath("docker"); err != nil {
				return err
			}
			env := run.BaseEnv(run.Inherit("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")...)
			out, err := run.Output(ctx, run.Cmd{Args: []string{"docker", "version", "--format", "{{.Server.Version}}"}, Env: env})
			if err != nil {
				return fmt.Errorf("the docker daemon does not answer: %w", err)
			}
			if strings.TrimSpace(string(out)) == "" {
				return errors.New("the docker daemon reported no version")
			}
			return nil
		},
	}
}

// lookPath finds a program in this process's PATH (like the command
// runner does for its children).
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		if isExecutable(name) {
			return name, nil
		}
		return "", fmt.Errorf("%s is not an executable file", name)
	}
	if p, err := run.LookPath(name, run.Inherit("PATH")); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in PATH", name)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// evalNeeds evaluates every prerequisite and returns the reason and remedy
// for all the missing ones at once ("" when all are present).
func evalNeeds(ctx context.Context, needs []Prereq) (reason, remedy string) {
	var reasons, remedies []string
	for _, p := range needs {
		var err error
		if p.Check == nil {
			err = errors.New("the prerequisite has no Check function (a defect of the check)")
		} else {
			pctx, cancel := context.WithTimeout(ctx, prereqTimeout)
			err = safeCall(func() error { return p.Check(pctx) })
			cancel()
		}
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("needs %s: %v", p.What, err))
			if p.Remedy != "" && !contains(remedies, p.Remedy) {
				remedies = append(remedies, p.Remedy)
			}
		}
	}
	return strings.Join(reasons, "; "), strings.Join(remedies, "; ")
}

func safeCall(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panicked: %v", r)
		}
	}()
	return f()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
