//go:build linux || darwin || freebsd || netbsd || openbsd

package terminal

import "syscall"

// Ring storage lives outside the Go heap, in anonymous mappings. A ring is
// long-lived, holds no pointers and is written all over; on the heap each
// full ring would also count towards the collector's goal (GOGC), so a
// server with hundreds of sessions would keep about twice the scrollback
// resident. Mapped pages cost only what has been written to them, and go
// back to the system the moment a session ends.

// allocRingBuf returns n zero bytes and whether they are mapped (and so
// must be given back with freeRingBuf).
func allocRingBuf(n int) ([]byte, bool) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		// Out of address space or mappings: the heap still works.
		return make([]byte, n), false
	}
	return b, true
}

func freeRingBuf(b []byte, mapped bool) {
	if mapped && len(b) > 0 {
		_ = syscall.Munmap(b)
	}
}
