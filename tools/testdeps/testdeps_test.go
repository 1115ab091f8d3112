package testdeps

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Where a tool comes from when setup-test-deps does not install it.
const (
	essential = "(essential)" // in every Debian system (coreutils, util-linux, dash)
	toolchain = "(ci)"        // what CI starts from: Go, and git to check the project out
)

// toolPackage maps each program the Go files run to its Debian package.
var toolPackage = map[string]string{
	"mosquitto":        "mosquitto",
	"mosquitto_passwd": "mosquitto",
	"mosquitto_pub":    "mosquitto-clients",
	"mosquitto_sub":    "mosquitto-clients",
	"fsck.vfat":        "dosfstools",
	"mkfs.fat":         "dosfstools",
	"mdir":             "mtools",
	"mtype":            "mtools",
	"mcopy":            "mtools",
	"mshowfat":         "mtools",
	"sfdisk":           "fdisk",
	"debugfs":          "e2fsprogs",
	"mkfs.ext4":        "e2fsprogs",
	"e2fsck":           "e2fsprogs",
	"losetup":          "mount",
	"mksquashfs":       "squashfs-tools",
	"unsquashfs":       "squashfs-tools",
	"openssl":          "openssl",
	"ip":               "iproute2",
	"chromium":         "chromium",
	"stdbuf":           essential,
	"timeout":          essential,
	"uname":            essential,
	"sh":               essential,
	"prlimit":          essential,
	"unshare":          essential, // util-linux
	"go":               toolchain,
	"git":              toolchain,
}

// runs finds the literal program names a Go source passes to the calls
// that run or look up a program.
var runs = regexp.MustCompile(`(?:NeedTool\(\w+, |exec\.Command\(|exec\.CommandContext\(\w+, |exec\.LookPath\()"([^"]+)"`)

// toolsIn returns the program names src runs; absolute paths (programs
// inside the firmware image) are not host tools.
func toolsIn(src string) []string {
	var out []string
	for _, m := range runs.FindAllStringSubmatch(src, -1) {
		if !strings.HasPrefix(m[1], "/") {
			out = append(out, m[1])
		}
	}
	return out
}

// setupPackages reads the packages=( ... ) list of tools/setup-test-deps.
func setupPackages(script string) []string {
	_, rest, ok := strings.Cut(script, "packages=(")
	if !ok {
		return nil
	}
	list, _, _ := strings.Cut(rest, "\n)")
	var out []string
	for line := range strings.SplitSeq(list, "\n") {
		line, _, _ = strings.Cut(line, "#")
		out = append(out, strings.Fields(line)...)
	}
	return out
}

// check returns a problem for each tool in tools that has no package, or
// whose package setup does not install.
func check(tools map[string][]string, setup []string) []string {
	var problems []string
	for tool, files := range tools {
		pkg, ok := toolPackage[tool]
		switch {
		case !ok:
			problems = append(problems, tool+" (run by "+strings.Join(files, ", ")+") has no Debian package in toolPackage: add it there and to tools/setup-test-deps")
		case pkg == essential || pkg == toolchain:
		case !slices.Contains(setup, pkg):
			problems = append(problems, tool+" (run by "+strings.Join(files, ", ")+") comes from "+pkg+", which tools/setup-test-deps does not install")
		}
	}
	slices.Sort(problems)
	return problems
}

func TestEveryToolIsInstalled(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(root, "tools/setup-test-deps"))
	if err != nil {
		t.Fatal(err)
	}
	setup := setupPackages(string(script))
	if !slices.Contains(setup, "mosquitto") {
		t.Fatalf("could not read the package list of tools/setup-test-deps: %q", setup)
	}
	tools := map[string][]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "bin" || d.Name() == "tmp" ||
			path == filepath.Join(root, "tools/testdeps")) { // its own examples

			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, tool := range toolsIn(string(b)) {
			if !slices.Contains(tools[tool], rel) {
				tools[tool] = append(tools[tool], rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tools["mosquitto_pub"]) == 0 {
		t.Fatalf("found no tools in the tree (%v): the pattern is broken", tools)
	}
	for _, p := range check(tools, setup) {
		t.Error(p)
	}
}

// TestCheckCatches: each rule catches what it is for.
func TestCheckCatches(t *testing.T) {
	src := `testenv.NeedTool(t, "frobnicate"); exec.Command("mksquashfs"); exec.CommandContext(ctx, "uname"); exec.Command("/gokrazy/x")`
	got := toolsIn(src)
	if want := []string{"frobnicate", "mksquashfs", "uname"}; !slices.Equal(got, want) {
		t.Fatalf("toolsIn: %q, want %q", got, want)
	}
	tools := map[string][]string{"frobnicate": {"a.go"}, "mksquashfs": {"b.go"}, "uname": {"c.go"}}
	problems := check(tools, []string{"mosquitto"})
	if len(problems) != 2 || !strings.Contains(problems[0], "frobnicate") || !strings.Contains(problems[1], "squashfs-tools") {
		t.Fatalf("check: %q", problems)
	}
	if p := check(tools, []string{"squashfs-tools"}); len(p) != 1 {
		t.Fatalf("with squashfs-tools installed: %q", p)
	}
	script := "x\npackages=(\n\tmosquitto # comment\n\tfdisk\n)\n"
	if got := setupPackages(script); !slices.Equal(got, []string{"mosquitto", "fdisk"}) {
		t.Fatalf("setupPackages: %q", got)
	}
}
