package broker

import "syscall"

// syscallEMFILE is "too many open files": accept backs off instead of
// failing.
const syscallEMFILE = syscall.EMFILE
