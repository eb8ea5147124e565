package hostreq

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ranCommands scans the module's Go sources (tests included) for the
// programs handed to the command runner (internal/run) or os/exec: the
// first element of a []string literal given as Args, appended to, or
// assigned to an args/cmd/tool variable, returned by a function whose name
// says it builds arguments, or a map value of a tool table; and the name
// given to exec.Command. Programs run inside a chroot through helpers
// (r.in("apt-get", ...)) are the root's, not the host's, and not scanned.
func ranCommands(t *testing.T, root string) map[string][]string {
	found := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		if !runsCommands(filepath.Dir(p)) {
			return nil
		}
		add := func(bl *ast.BasicLit) {
			if bl == nil || bl.Kind != token.STRING {
				return
			}
			s, _ := strconv.Unquote(bl.Value)
			rel, _ := filepath.Rel(root, fset.Position(bl.Pos()).String())
			found[s] = append(found[s], rel)
		}
		first := func(e ast.Expr) {
			for i := 0; i < 2; i++ { // append(append([]string{"apt-get"}, opts...), ...)
				if c, ok := e.(*ast.CallExpr); ok {
					if id, ok := c.Fun.(*ast.Ident); ok && id.Name == "append" && len(c.Args) > 0 {
						e = c.Args[0]
					}
				}
			}
			x, ok := e.(*ast.CompositeLit)
			if !ok || len(x.Elts) == 0 {
				return
			}
			if at, ok := x.Type.(*ast.ArrayType); !ok || at.Len != nil {
				return
			}
			bl, _ := x.Elts[0].(*ast.BasicLit)
			add(bl)
		}
		argsName := func(n string) bool {
			n = strings.ToLower(n)
			return strings.Contains(n, "args") || n == "cmd" || n == "tool" || n == "argv"
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.KeyValueExpr:
				if id, ok := x.Key.(*ast.Ident); ok && id.Name == "Args" {
					first(x.Value)
				}
			case *ast.AssignStmt:
				for i, l := range x.Lhs {
					if id, ok := l.(*ast.Ident); ok && i < len(x.Rhs) && argsName(id.Name) {
						first(x.Rhs[i])
						if m, ok := x.Rhs[i].(*ast.IndexExpr); ok { // tool := map[string][]string{...}[format]
							if cl, ok := m.X.(*ast.CompositeLit); ok {
								for _, e := range cl.Elts {
									if kv, ok := e.(*ast.KeyValueExpr); ok {
										if v, ok := kv.Value.(*ast.CompositeLit); ok && v.Type == nil && len(v.Elts) > 0 {
											bl, _ := v.Elts[0].(*ast.BasicLit)
											add(bl)
										}
									}
								}
							}
						}
					}
				}
			case *ast.FuncDecl:
				if argsName(x.Name.Name) && x.Body != nil {
					ast.Inspect(x.Body, func(n ast.Node) bool {
						if r, ok := n.(*ast.ReturnStmt); ok && len(r.Results) > 0 {
							first(r.Results[0])
						}
						return true
					})
				}
			case *ast.CallExpr:
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok {
					if id, ok := sel.X.(*ast.Ident); ok && id.Name == "exec" && (sel.Sel.Name == "Command" || sel.Sel.Name == "CommandContext") {
						i := 0
						if sel.Sel.Name == "CommandContext" {
							i = 1
						}
						if len(x.Args) > i {
							bl, _ := x.Args[i].(*ast.BasicLit)
							add(bl)
						}
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// runsCommands reports whether a package directory starts programs: one of
// its files imports the command runner or os/exec (the others may build
// the argument lists, like the toolchain's recipe).
func runsCommands(dir string) bool {
	if v, ok := runsCache[dir]; ok {
		return v
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	runs := false
	for _, p := range files {
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			continue
		}
		for _, im := range f.Imports {
			v, _ := strconv.Unquote(im.Path.Value)
			runs = runs || v == "os/exec" || strings.HasSuffix(v, "/internal/run")
		}
	}
	runsCache[dir] = runs
	return runs
}

var runsCache = map[string]bool{}

// TestEveryCommandTheCodeRunsIsInTheTable: a program the code runs that no
// table entry provides would be missing on a fresh machine with no
// preflight to say so.
func TestEveryCommandTheCodeRunsIsInTheTable(t *testing.T) {
	found := ranCommands(t, "../..")
	for _, must := range []string{"git", "gpgv", "mmdebstrap", "qemu-system-x86_64", "xz", "dpkg-deb", "rpmkeys", "docker", "unshare"} {
		if len(found[must]) == 0 {
			t.Errorf("the scan no longer sees %s run: fix the scan", must)
		}
	}
	for cmd, where := range found {
		name := cmd
		if strings.HasPrefix(cmd, "/") || strings.HasPrefix(cmd, "./") {
			if _, ok := ProviderOf(cmd); ok || strings.HasPrefix(cmd, "./") {
				continue // a file of the table, or a program of the build tree
			}
			name = filepath.Base(cmd)
		}
		if _, ok := NotPrerequisites[name]; ok || strings.HasPrefix(name, "no-such-") {
			continue // not the host's, or a test of a missing program
		}
		if _, ok := ProviderOf(name); !ok {
			t.Errorf("%s is run (%s) but no entry of the table in internal/hostreq provides it", cmd, strings.Join(where, ", "))
		}
	}
}

// TestNeedCommandCallsAgreeWithTheTable: every testenv.NeedCommand and
// verify.NeedCommand names the package the table says provides the programs.
func TestNeedCommandCallsAgreeWithTheTable(t *testing.T) {
	n := 0
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(nd ast.Node) bool {
			c, ok := nd.(*ast.CallExpr)
			if !ok {
				return true
			}
			var args []ast.Expr
			switch fn := c.Fun.(type) {
			case *ast.SelectorExpr:
				if id, ok := fn.X.(*ast.Ident); ok && fn.Sel.Name == "NeedCommand" && id.Name == "testenv" && len(c.Args) > 1 {
					args = c.Args[1:]
				} else if ok && fn.Sel.Name == "NeedCommand" && id.Name == "verify" {
					args = c.Args
				}
			case *ast.Ident:
				if fn.Name == "NeedCommand" && strings.Contains(p, "verify") {
					args = c.Args
				}
			}
			if len(args) < 2 {
				return true
			}
			var lits []string
			for _, a := range args {
				bl, ok := a.(*ast.BasicLit)
				if !ok {
					return true
				}
				s, _ := strconv.Unquote(bl.Value)
				lits = append(lits, s)
			}
			n++
			for _, cmd := range lits[1:] {
				p2, ok := ProviderOf(cmd)
				if !ok && strings.HasPrefix(cmd, "halvm-no-such") {
					continue // a test of the missing case
				}
				if !ok || p2.Name != lits[0] {
					t.Errorf("%s: NeedCommand(%q, %q): the table says %q provides %s", fset.Position(c.Pos()), lits[0], cmd, p2.Name, cmd)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Errorf("found only %d NeedCommand calls: fix the scan", n)
	}
}
