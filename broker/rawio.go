package broker

import "edgebroker/broker/sockio"

// rawReadFD and rawWriteFD are the broker's reads and writes on its
// non-blocking sockets, without telling the Go scheduler (sockio says
// why). Use them only inside syscall.RawConn callbacks.
func rawReadFD(fd int, p []byte) (int, error) { return sockio.ReadFD(fd, p) }

func rawWriteFD(fd int, p []byte) (int, error) { return sockio.WriteFD(fd, p) }
