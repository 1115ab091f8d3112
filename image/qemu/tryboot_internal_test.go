package qemu

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"edgebroker/broker/testenv"
	"edgebroker/image/build"
	"edgebroker/provisioning/fwupdate"
)

// TestTryboot: a trial armed by the device's own code (fwupdate.FileBoot
// with Arm, writing the FAT in place) makes the next boot use cmdtry.txt
// with the trial argument, once; the boot after it is a default boot.
func TestTryboot(t *testing.T) {
	for _, tool := range []string{"mkfs.fat", "mcopy", "mtype", "fsck.vfat"} {
		testenv.NeedTool(t, tool)
	}
	if c, k, a, m := tryConfig, tryCmdline, tryArmed, tryKernelOn; c != fwupdate.TryConfig || k != fwupdate.TryCmdline || a != fwupdate.TryArmedLine || m != fwupdate.QEMUTrialArg {
		t.Fatalf("the harness's names %q %q %q %q differ from provisioning/fwupdate's", c, k, a, m)
	}
	ctx := context.Background()
	dir := t.TempDir()
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
	}
	fat := filepath.Join(dir, "boot.fat")
	os.WriteFile(fat, nil, 0o644)
	os.Truncate(fat, 32<<20)
	run("mkfs.fat", "-F", "16", "-f", "1", "-S", "512", fat)
	cmdline := "console=ttyAMA0,115200 root=PARTUUID=743e4ccd-02 init=/gokrazy/init" + strings.Repeat(" ", 64)
	for name, content := range map[string]string{"vmlinuz": "kernel", "cmdline.txt": cmdline, "cmdtry.txt": cmdline,
		"config.txt": "", "tryboot.txt": "\n[all]\ncmdline=cmdtry.txt\n"} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		run("mcopy", "-i", fat, p, "::/"+name)
	}
	img := filepath.Join(dir, "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(build.DefaultSize)
	b, _ := os.ReadFile(fat)
	l := build.LayoutFor(build.DefaultSize)
	f.WriteAt(b, l.Start[build.PartBoot])
	f.Close()

	proc := filepath.Join(dir, "proc-cmdline")
	os.WriteFile(proc, []byte(cmdline), 0o644)
	boot := &fwupdate.FileBoot{Files: &fwupdate.FATFiles{Path: img, Extent: fwupdate.Extent{Start: l.Start[build.PartBoot], Size: int64(len(b))}},
		CmdlinePath: proc, IsTrial: fwupdate.QEMUTrial(proc), Arm: true}
	if err := boot.Try(1); err != nil {
		t.Fatal(err)
	}
	_, got, err := bootFiles(ctx, img, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "root=PARTUUID=743e4ccd-03 ") || !strings.HasSuffix(got, " "+fwupdate.QEMUTrialArg) {
		t.Errorf("armed boot: cmdline %q, want partition 3 on trial", got)
	}
	os.WriteFile(proc, []byte(got), 0o644)
	if st, err := boot.State(); err != nil || !st.Trial || st.Running != 1 || st.Default != 0 {
		t.Errorf("the trial's own view: %+v, %v", st, err)
	}
	if _, got, _ = bootFiles(ctx, img, t.TempDir()); !strings.Contains(got, "-02 ") || strings.Contains(got, fwupdate.QEMUTrialArg) {
		t.Errorf("the boot after the trial: cmdline %q, want partition 2, no trial", got)
	}
	ext := filepath.Join(dir, "check.fat")
	part := make([]byte, len(b))
	if f, err = os.Open(img); err != nil {
		t.Fatal(err)
	}
	f.ReadAt(part, l.Start[build.PartBoot])
	f.Close()
	os.WriteFile(ext, part, 0o644)
	run("fsck.vfat", "-n", ext)
}
