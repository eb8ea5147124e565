package checkstest

import (
	"context"
	"strings"
	"testing"

	"github.com/halvm/halvm-release/verify"
	"github.com/halvm/halvm-release/verify/checks"
)

// RunCheck runs the suite's check name alone (the checks it runs after
// dropped) on env with cfg, logs and returns its result. Used on the
// synthetic release and on copies of release's TestDemo demo.
func RunCheck(t testing.TB, env *verify.Env, cfg checks.Config, name string) verify.Result {
	t.Helper()
	for _, c := range checks.Suite(cfg) {
		if c.Name == name {
			c.After = nil
			rep, err := verify.Run(context.Background(), env, []verify.Check{c}, verify.Options{})
			if err != nil {
				t.Fatal(err)
			}
			res := rep.Results[0]
			t.Logf("%s: %s: %s%s\n  %s", name, res.Status, res.Summary, res.Reason, strings.Join(res.Details, "\n  "))
			return res
		}
	}
	t.Fatalf("no check %s in the suite", name)
	return verify.Result{}
}

// WantStatus fails t unless res has status want and its reason or details
// say each of reasonHas.
func WantStatus(t testing.TB, res verify.Result, want verify.Status, reasonHas ...string) {
	t.Helper()
	if res.Status != want {
		t.Fatalf("%s: status %s (%s), want %s", res.Name, res.Status, res.Reason, want)
	}
	all := res.Reason + "\n" + strings.Join(res.Details, "\n")
	for _, s := range reasonHas {
		if !strings.Contains(all, s) {
			t.Errorf("%s: the report does not say %q:\n%s", res.Name, s, all)
		}
	}
}
