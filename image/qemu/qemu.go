// Package qemu boots an arm64 edgebroker image (build.TargetQEMU) under
// qemu-system-aarch64 on the "virt" machine, the way the Raspberry Pi
// firmware boots the SD card: at every Start it reads /vmlinuz and
// /cmdline.txt from the image's boot partition (with mtools), so a root
// partition switch or a boot partition update made by gokrazy's updater
// takes effect at the next Start. It plays the firmware's tryboot too:
// when the device armed a trial in tryboot.txt, the next Start boots
// cmdtry.txt once, with edgebroker.tryboot=1.
//
// QEMU runs under timeout(1) and is stopped by its PID; the guest's
// network is QEMU's user-mode network with restrict=on (no way out) and
// host forwards bound to 127.0.0.1 only. A guest reboot ends QEMU
// (-no-reboot): call Start again to boot the next time.
package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"edgebroker/image/build"
)

// Options configure one boot.
type Options struct {
	Image string // raw disk image, attached as a virtio disk
	// Forward maps guest TCP ports to host ports on 127.0.0.1; a host port
	// of 0 picks a free one (see VM.Ports).
	Forward map[int]int
	// ForwardTo maps guest address:port pairs ("10.0.2.20:1883") to host
	// ports on 127.0.0.1 the same way (see VM.AddrPorts): Forward reaches
	// the address QEMU's DHCP server hands out (10.0.2.15), ForwardTo any
	// address the guest sets itself.
	ForwardTo map[string]int
	// USBStick, when set, is a raw image attached as a USB mass-storage
	// stick on an xHCI controller.
	USBStick string
	// Log receives the serial console (appended); required.
	Log string
	// Timeout bounds the whole run (timeout(1) kills QEMU after it); 0
	// means 10 minutes.
	Timeout time.Duration
	// MemoryMiB and CPUs size the VM; 0 means 1024 and 2.
	MemoryMiB, CPUs int
	// Binary is the QEMU binary; "" means qemu-system-aarch64.
	Binary string
}

// VM is a running QEMU.
type VM struct {
	Ports     map[int]int    // guest port → host port on 127.0.0.1
	AddrPorts map[string]int // guest address:port → host port on 127.0.0.1
	Log       string         // serial console log
	Args      []string       // the command line that was run

	cmd  *exec.Cmd
	done chan struct{}
	err  error
	tmp  string
}

// Start boots the image. The context bounds only the start; Stop or the
// timeout end the VM.
func Start(ctx context.Context, o Options) (*VM, error) {
	if o.Image == "" || o.Log == "" {
		return nil, errors.New("qemu: Options.Image and Options.Log are required")
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1024
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.Binary == "" {
		o.Binary = "qemu-system-aarch64"
	}
	tmp, err := os.MkdirTemp("", "edgebroker-qemu-")
	if err != nil {
		return nil, err
	}
	vm := &VM{Ports: map[int]int{}, AddrPorts: map[string]int{}, Log: o.Log, done: make(chan struct{}), tmp: tmp}
	fail := func(err error) (*VM, error) {
		os.RemoveAll(tmp)
		return nil, err
	}
	kernel, cmdline, err := bootFiles(ctx, o.Image, tmp)
	if err != nil {
		return fail(err)
	}
	netdev := "user,id=net0,restrict=on"
	for _, guest := range slices.Sorted(mapKeys(o.Forward)) {
		host := o.Forward[guest]
		if host == 0 {
			if host, err = freePort(); err != nil {
				return fail(err)
			}
		}
		vm.Ports[guest] = host
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", host, guest)
	}
	for _, guest := range slices.Sorted(maps.Keys(o.ForwardTo)) {
		if _, _, err := net.SplitHostPort(guest); err != nil {
			return fail(fmt.Errorf("qemu: ForwardTo %q: %w", guest, err))
		}
		host := o.ForwardTo[guest]
		if host == 0 {
			if host, err = freePort(); err != nil {
				return fail(err)
			}
		}
		vm.AddrPorts[guest] = host
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-%s", host, guest)
	}
	args := []string{
		"--signal=TERM", "--kill-after=10", strconv.Itoa(int(o.Timeout.Seconds())),
		o.Binary,
		"-machine", "virt", "-cpu", "cortex-a72",
		"-smp", strconv.Itoa(o.CPUs), "-m", strconv.Itoa(o.MemoryMiB),
		"-display", "none", "-monitor", "none", "-serial", "file:" + o.Log,
		"-no-reboot",
		"-kernel", kernel, "-append", cmdline,
		"-drive", "file=" + o.Image + ",format=raw,if=virtio",
		// romfile= : the kernel is booted directly, so the NIC needs no
		// option ROM; without it QEMU looks for efi-virtio.rom (Debian's
		// ipxe-qemu, only a recommends) and will not start.
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,romfile=",
		"-device", "i6300esb",
	}
	if o.USBStick != "" {
		args = append(args, "-device", "qemu-xhci",
			"-drive", "if=none,id=stick,file="+o.USBStick+",format=raw",
			"-device", "usb-storage,drive=stick")
	}
	vm.Args = append([]string{"timeout"}, args...)
	vm.cmd = exec.Command("timeout", args...)
	var stderr bytes.Buffer
	vm.cmd.Stdout, vm.cmd.Stderr = &stderr, &stderr
	if err := vm.cmd.Start(); err != nil {
		return fail(fmt.Errorf("qemu: %w", err))
	}
	go func() {
		err := vm.cmd.Wait()
		if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		vm.err = err
		os.RemoveAll(tmp)
		close(vm.done)
	}()
	return vm, nil
}

// PowerCut kills QEMU at once (SIGKILL to the process group timeout(1)
// makes for itself and QEMU): the guest loses power mid-flight, what its
// disk did not flush is lost. It returns once QEMU is gone.
func (vm *VM) PowerCut() {
	syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
	<-vm.done
}

// Addr is the host address forwarded to guest port p.
func (vm *VM) Addr(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(vm.Ports[p])) }

// AddrTo is the host address forwarded to guest address:port guest
// (Options.ForwardTo).
func (vm *VM) AddrTo(guest string) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(vm.AddrPorts[guest]))
}

// PID is the process ID of timeout(1), QEMU's parent.
func (vm *VM) PID() int { return vm.cmd.Process.Pid }

// Done is closed when QEMU has exited (guest reboot or power-off, Stop, or
// the timeout).
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Err is QEMU's exit error, valid after Done is closed.
func (vm *VM) Err() error { return vm.err }

// Wait waits up to d for QEMU to exit by itself (e.g. after a guest reboot).
func (vm *VM) Wait(d time.Duration) error {
	select {
	case <-vm.done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("qemu: still running after %v", d)
	}
}

// Stop ends QEMU: SIGTERM to its timeout(1) parent (which passes it on),
// then SIGKILL after 10 s. It is a no-op when QEMU has exited.
func (vm *VM) Stop() error {
	select {
	case <-vm.done:
		return nil
	default:
	}
	vm.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-vm.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	vm.cmd.Process.Kill()
	<-vm.done
	return nil
}

// bootFiles copies /vmlinuz out of the image's boot partition and reads
// /cmdline.txt, as a bootloader would.
func bootFiles(ctx context.Context, image, tmp string) (kernel, cmdline string, err error) {
	st, err := os.Stat(image)
	if err != nil {
		return "", "", fmt.Errorf("qemu: %w", err)
	}
	l := build.LayoutFor(st.Size())
	fat := fmt.Sprintf("%s@@%d", image, l.Start[build.PartBoot])
	kernel = filepath.Join(tmp, "vmlinuz")
	if err := mtools(ctx, "mcopy", "-n", "-i", fat, "::/vmlinuz", kernel); err != nil {
		return "", "", err
	}
	cmd := exec.CommandContext(ctx, "mtype", "-i", fat, "::/cmdline.txt")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("qemu: reading cmdline.txt from %s: %v", image, err)
	}
	cmdline = strings.TrimSpace(string(out))
	if try, ok, err := tryboot(ctx, fat, tmp); err != nil {
		return "", "", fmt.Errorf("qemu: %s: %w", image, err)
	} else if ok {
		cmdline = try
	}
	if !strings.Contains(cmdline, "root=") {
		return "", "", fmt.Errorf("qemu: cmdline.txt of %s has no root=: %q", image, cmdline)
	}
	return kernel, cmdline, nil
}

// The trial boot, as provisioning/fwupdate arms it (FileBoot.Arm): these
// are its TryConfig, TryCmdline, TryArmedLine and QEMUTrialArg.
const (
	tryConfig   = "tryboot.txt"
	tryCmdline  = "cmdtry.txt"
	tryArmed    = "# edgebroker: tryboot armed"
	tryKernelOn = "edgebroker.tryboot=1"
)

// tryboot plays the Pi firmware's tryboot: when tryboot.txt of the boot
// FAT fat carries the armed line, it removes the line (a trial is one
// boot) and returns cmdtry.txt's command line with the trial argument.
func tryboot(ctx context.Context, fat, tmp string) (cmdline string, ok bool, err error) {
	cmd := exec.CommandContext(ctx, "mtype", "-i", fat, "::/"+tryConfig)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	tc, err := cmd.Output()
	if err != nil || !slices.Contains(strings.Split(string(tc), "\n"), tryArmed) {
		return "", false, nil // an image without the trial's files, or not armed
	}
	cmd = exec.CommandContext(ctx, "mtype", "-i", fat, "::/"+tryCmdline)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	try, err := cmd.Output()
	if err != nil {
		return "", false, fmt.Errorf("reading %s: %v", tryCmdline, err)
	}
	disarmed := filepath.Join(tmp, tryConfig)
	if err := os.WriteFile(disarmed, bytes.ReplaceAll(tc, []byte(tryArmed+"\n"), nil), 0o644); err != nil {
		return "", false, err
	}
	if err := mtools(ctx, "mcopy", "-o", "-i", fat, disarmed, "::/"+tryConfig); err != nil {
		return "", false, err
	}
	return strings.TrimSpace(string(try)) + " " + tryKernelOn, true, nil
}

func mtools(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("qemu: %s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func mapKeys(m map[int]int) func(func(int) bool) {
	return func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
