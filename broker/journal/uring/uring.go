// Package uring syncs a file's data to disk through Linux's io_uring, so
// that the goroutine waiting for the disk is parked in Go's netpoller
// instead of blocked in a system call.
//
// Why: an ordinary fdatasync is a blocking system call. While it waits
// for the disk (0.2 ms on the build machine's SSD, tens of milliseconds
// on an SD card), Go's sysmon thread wakes every 20 µs to see whether
// the processor should be handed to another thread, and hands it over;
// at the journal's group-commit rate that polling was 38 % of the
// broker's context switches and 10 % of its CPU (perf record, durable
// fan-in; CONTRIBUTING.md). A RawSyscall would stop the polling but hold
// the processor for the whole disk wait, so a GC stop-the-world would
// wait for the SD card with every connection stopped. Here the fsync
// runs in the kernel's io-wq worker; the completion posts to an eventfd
// that the netpoller watches, and the goroutine sleeps like one waiting
// for a socket.
//
// Only IORING_OP_WRITE and IORING_OP_FSYNC are used, one chain at a
// time (the journal has one committer at a time), on a ring of 16
// entries. golang.org/x/sys
// has the system call numbers but not io_uring's structures, and no
// io_uring module is served by this project's module proxy; the part
// used here is small: setup, the two rings' offsets, one submission
// entry, one completion entry.
//
// The journal uses it, with Options.RingSync, for the commits its
// committer goroutine makes back to back under load, never for a lone
// commit at a low rate, which the blocking calls answer sooner; it is off
// by default (Options.RingSync says why: less CPU, but later answers).
//
// Where io_uring is missing or refused (a kernel without it, a seccomp
// profile, kernel.io_uring_disabled), Open fails and the caller keeps
// the ordinary system call.
package uring

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// io_uring ABI (include/uapi/linux/io_uring.h).
const (
	opFsync       = 3          // IORING_OP_FSYNC
	opWrite       = 23         // IORING_OP_WRITE
	sqeIOLink     = 1 << 2     // IOSQE_IO_LINK
	fsyncDatasync = 1          // IORING_FSYNC_DATASYNC
	offSQRing     = 0          // IORING_OFF_SQ_RING
	offCQRing     = 0x8000000  // IORING_OFF_CQ_RING
	offSQEs       = 0x10000000 // IORING_OFF_SQES
	featSingleMap = 1 << 0     // IORING_FEAT_SINGLE_MMAP
	registerEvfd  = 4          // IORING_REGISTER_EVENTFD
	sqeSize       = 64
	cqeSize       = 16
	entries       = 16
)

// params is struct io_uring_params.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqOffsets
	cqOff                                                                  cqOffsets
}

type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// Syncer submits fdatasyncs to one io_uring. Its methods are safe for
// concurrent use; operations run one at a time.
type Syncer struct {
	mu   sync.Mutex // held across an operation's submission and completion, and by Close
	ring int        // the io_uring file descriptor; set by Open
	ev   *os.File   // the eventfd the ring posts completions to, in the netpoller; set by Open
	// evc is ev's raw connection and evRead its read callback
	// (readEventfd), made once; evErr is the callback's result. Used
	// under mu.
	evc    syscall.RawConn
	evRead func(fd uintptr) bool
	evErr  unix.Errno
	maps   [][]byte // the mmapped rings and entries, unmapped by Close
	closed bool     // guarded by mu
	broken bool     // guarded by mu: an earlier Sync left the ring unusable

	// Pointers into the shared rings, set by Open. The kernel reads
	// sqTail and writes sqHead, cqTail and the entries; this side
	// writes the submission entry, the array slot, sqTail and cqHead.
	sqTail, sqMask, sqArray *uint32
	cqHead, cqTail, cqMask  *uint32
	sqes                    []byte
	cqes                    []byte
}

// Open sets up a ring. It fails where io_uring is missing or refused:
// the caller then syncs with the ordinary system call.
func Open() (s *Syncer, err error) {
	var p params
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, entries, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	s = &Syncer{ring: int(fd)}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*cqeSize
	var sq, cq []byte
	if p.features&featSingleMap != 0 {
		sq, err = s.mmap(offSQRing, max(sqSize, cqSize))
		cq = sq
	} else {
		sq, err = s.mmap(offSQRing, sqSize)
		if err == nil {
			cq, err = s.mmap(offCQRing, cqSize)
		}
	}
	if err != nil {
		return nil, err
	}
	if s.sqes, err = s.mmap(offSQEs, int(p.sqEntries)*sqeSize); err != nil {
		return nil, err
	}
	s.sqTail, s.sqMask, s.sqArray = u32(sq, p.sqOff.tail), u32(sq, p.sqOff.ringMask), u32(sq, p.sqOff.array)
	s.cqHead, s.cqTail, s.cqMask = u32(cq, p.cqOff.head), u32(cq, p.cqOff.tail), u32(cq, p.cqOff.ringMask)
	s.cqes = cq[p.cqOff.cqes:]

	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	s.ev = os.NewFile(uintptr(efd), "io_uring-eventfd") // non-blocking: in the netpoller
	if s.evc, err = s.ev.SyscallConn(); err != nil {
		return nil, err
	}
	s.evRead = s.readEventfd
	ev := int32(efd)
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, fd, registerEvfd, uintptr(unsafe.Pointer(&ev)), 1, 0, 0); errno != 0 {
		return nil, fmt.Errorf("io_uring_register eventfd: %w", errno)
	}
	return s, nil
}

func (s *Syncer) mmap(off int64, n int) ([]byte, error) {
	b, err := unix.Mmap(s.ring, off, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("io_uring mmap %#x: %w", off, err)
	}
	s.maps = append(s.maps, b)
	return b, nil
}

// readEventfd consumes the eventfd's counter; false (wait for the
// netpoller) while it is zero. A raw system call, as the broker's socket
// reads (broker/sockio): an ordinary one would wake Go's sysmon thread
// from its sleep when the broker was idle, and it then polls every 20 µs
// for a millisecond: at a commit every millisecond, all the time.
func (s *Syncer) readEventfd(fd uintptr) bool {
	var buf [8]byte
	for {
		_, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), 8)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		s.evErr = errno
		return true
	}
}

func u32(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }

// ErrClosed is returned by Sync after Close.
var ErrClosed = errors.New("uring: closed")

// ErrBroken is returned by Sync after a failure left operations of a
// chain in the ring (a failed submission or completion wait): the
// journal fails, as after a failed fdatasync.
var ErrBroken = errors.New("uring: an earlier failure left the ring unusable")

// Write is one write of a Sync: Buf at offset Off of the file.
type Write struct {
	Buf []byte
	Off int64
}

// maxChain is how many operations one submission links: the ring's
// size. A Sync with more writes submits them in several chains.
const maxChain = entries

// Sync writes each of ws to file fd and then syncs the file's data
// (fdatasync). It returns once all of it is on the disk, or with the
// first error: a write the kernel refused or took only in part (the
// operations linked after it are cancelled).
//
// The writes and the sync are one linked chain submitted with one
// io_uring_enter, without waiting (RawSyscall: io_uring issues buffered
// writes without blocking, IOCB_NOWAIT, and hands to its io-wq worker
// whatever would block, the sync always); the goroutine then parks on
// the eventfd in the netpoller until the chain completes.
func (s *Syncer) Sync(fd int, ws []Write) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.broken {
		return ErrBroken
	}
	for len(ws) >= maxChain {
		if err := s.chain(fd, ws[:maxChain-1], false); err != nil {
			return err
		}
		ws = ws[maxChain-1:]
	}
	return s.chain(fd, ws, true)
}

// chain submits ws (and the sync) linked, and waits for all of them.
// Callers hold mu; len(ws) < maxChain.
func (s *Syncer) chain(fd int, ws []Write, sync bool) error {
	n := uint32(len(ws))
	if sync {
		n++
	}
	if n == 0 {
		return nil
	}
	tail := atomic.LoadUint32(s.sqTail)
	mask := *s.sqMask
	for k := range n {
		i := (tail + k) & mask
		e := s.sqes[int(i)*sqeSize : int(i+1)*sqeSize]
		clear(e)
		if k < n-1 {
			e[1] = sqeIOLink
		}
		*(*int32)(unsafe.Pointer(&e[4])) = int32(fd)
		*(*uint64)(unsafe.Pointer(&e[32])) = uint64(k)
		if int(k) < len(ws) {
			w := ws[k]
			e[0] = opWrite
			*(*uint64)(unsafe.Pointer(&e[8])) = uint64(w.Off)
			*(*uint64)(unsafe.Pointer(&e[16])) = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(w.Buf))))
			*(*uint32)(unsafe.Pointer(&e[24])) = uint32(len(w.Buf))
		} else {
			e[0] = opFsync
			*(*uint32)(unsafe.Pointer(&e[28])) = fsyncDatasync
		}
		*(*uint32)(unsafe.Add(unsafe.Pointer(s.sqArray), 4*i)) = i
	}
	atomic.StoreUint32(s.sqTail, tail+n) // publishes the entries to the kernel
	for left := n; left > 0; {
		k, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(s.ring), uintptr(left), 0, 0, 0, 0)
		if errno == unix.EINTR || errno == unix.EAGAIN {
			continue
		}
		if errno != 0 {
			if left == n {
				// Nothing submitted: take the entries back.
				atomic.StoreUint32(s.sqTail, tail)
			} else {
				s.broken = true // part of a chain is in flight
			}
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
		left -= uint32(k)
	}
	var first error
	for got := uint32(0); got < n; {
		head := atomic.LoadUint32(s.cqHead)
		if head == atomic.LoadUint32(s.cqTail) {
			// Park until the ring posts a completion (the eventfd's
			// counter stays set if it already did).
			err := s.evc.Read(s.evRead)
			if err == nil && s.evErr != 0 {
				err = s.evErr
			}
			if err != nil {
				s.broken = true // completions would be left behind
				return fmt.Errorf("io_uring eventfd: %w", err)
			}
			continue
		}
		c := s.cqes[int(head&*s.cqMask)*cqeSize:]
		k := *(*uint64)(unsafe.Pointer(&c[0]))
		res := *(*int32)(unsafe.Pointer(&c[8]))
		atomic.StoreUint32(s.cqHead, head+1)
		got++
		if first != nil || k >= uint64(n) {
			continue
		}
		switch {
		case res < 0 && int(k) < len(ws):
			first = fmt.Errorf("write: %w", unix.Errno(-res))
		case res < 0:
			first = fmt.Errorf("fdatasync: %w", unix.Errno(-res))
		case int(k) < len(ws) && int(res) != len(ws[k].Buf):
			first = fmt.Errorf("write: %w (%d of %d bytes)", io.ErrShortWrite, res, len(ws[k].Buf))
		}
	}
	runtime.KeepAlive(ws) // the kernel read the buffers until the completions
	return first
}

// Close releases the ring. An operation in progress finishes first.
func (s *Syncer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.release()
}

func (s *Syncer) release() error {
	var errs []error
	for _, b := range s.maps {
		errs = append(errs, unix.Munmap(b))
	}
	s.maps = nil
	if s.ev != nil {
		errs = append(errs, s.ev.Close())
	}
	errs = append(errs, unix.Close(s.ring))
	return errors.Join(errs...)
}
