package terminal

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRingKeepsTailWithinBound(t *testing.T) {
	const limit = 64 << 10
	r := newRing(limit)
	var all []byte
	rng := rand.New(rand.NewPCG(1, 2))
	for len(all) < 1<<20 {
		p := make([]byte, 1+rng.IntN(9000))
		for i := range p {
			p[i] = 'a' + byte(rng.IntN(26)) // no newlines: nothing is skipped
		}
		r.write(p)
		all = append(all, p...)
		if r.size > limit || len(r.buf) > limit {
			t.Fatalf("ring holds %d bytes in %d, bound %d", r.size, len(r.buf), limit)
		}
		got := make([]byte, r.size)
		r.copyFrom(got, 0)
		if want := all[max(0, len(all)-limit):]; !bytes.Equal(got, want) {
			t.Fatalf("after %d bytes the ring is not the tail", len(all))
		}
	}
	if !r.dropped {
		t.Fatal("ring should know its front was cut off")
	}
}

func TestRingGrowsLazily(t *testing.T) {
	r := newRing(256 << 10)
	if r.buf != nil {
		t.Fatal("an empty ring allocated")
	}
	r.write([]byte("user@host:~$ "))
	if len(r.buf) > ringMinAlloc {
		t.Fatalf("a prompt allocated %d bytes", len(r.buf))
	}
	r.write(bytes.Repeat([]byte("x"), 10<<10))
	if len(r.buf) >= 256<<10 {
		t.Fatalf("10 KiB of output allocated the whole ring (%d)", len(r.buf))
	}
	if got := string(r.snapshot()); !strings.HasPrefix(got, "user@host:~$ xxx") || len(got) != 13+10<<10 {
		t.Fatalf("snapshot lost data across growth: %d bytes", len(got))
	}
}

func TestRingWriteLargerThanRing(t *testing.T) {
	r := newRing(1000)
	r.write([]byte("first\n"))
	big := bytes.Repeat([]byte("0123456789"), 250)
	r.write(big)
	if r.size != 1000 || !r.dropped {
		t.Fatalf("size %d dropped %v", r.size, r.dropped)
	}
	if got := r.snapshot(); !bytes.Equal(got, big[len(big)-1000:]) {
		t.Fatal("snapshot is not the tail of the large write")
	}

	exact := newRing(10)
	exact.write([]byte("0123456789"))
	if exact.dropped {
		t.Fatal("a write of exactly the ring size dropped nothing")
	}
	if got := string(exact.snapshot()); got != "0123456789" {
		t.Fatalf("got %q", got)
	}
}

func TestRingUnwrappedSnapshotIsEverything(t *testing.T) {
	r := newRing(1 << 10)
	if got := r.snapshot(); len(got) != 0 {
		t.Fatalf("empty ring snapshot %q", got)
	}
	r.write([]byte("no newline first, then\nmore"))
	if got := string(r.snapshot()); got != "no newline first, then\nmore" {
		t.Fatalf("got %q", got)
	}
}

func TestRingWrappedSnapshotStartsAfterNewline(t *testing.T) {
	r := newRing(100)
	for i := range 50 {
		r.write([]byte("line " + strings.Repeat("=", i%7) + "\n"))
	}
	// Make the physical wrap point fall inside the newline search window.
	r.write([]byte("tail"))
	snap := r.snapshot()
	full := make([]byte, r.size)
	r.copyFrom(full, 0)
	if !bytes.HasSuffix(full, snap) {
		t.Fatal("snapshot is not a tail of the ring")
	}
	cut := len(full) - len(snap)
	if cut == 0 || full[cut-1] != '\n' {
		t.Fatalf("snapshot %q does not start right after a newline", snap)
	}
	if bytes.IndexByte(full[:cut-1], '\n') >= 0 {
		t.Fatal("snapshot did not start after the first newline")
	}
	if !bytes.HasPrefix(snap, []byte("line ")) || !bytes.HasSuffix(snap, []byte("tail")) {
		t.Fatalf("snapshot %q", snap)
	}
}

func TestRingWrappedSnapshotNeverStartsMidRune(t *testing.T) {
	// No newline anywhere: the cut lands wherever the ring wrapped, and
	// every offset modulo the rune length must be handled.
	for shift := range 4 {
		r := newRing(1000 + shift)
		s := strings.Repeat("é€😀", 2000)
		for i := 0; i < len(s); i += 97 {
			r.write([]byte(s[i:min(i+97, len(s))]))
		}
		snap := r.snapshot()
		if !utf8.Valid(snap) {
			t.Fatalf("shift %d: snapshot is not valid UTF-8", shift)
		}
		if len(snap) == 0 || !utf8.RuneStart(snap[0]) {
			t.Fatalf("shift %d: snapshot starts mid-rune", shift)
		}
		if !strings.HasSuffix(s, string(snap)) || r.size-len(snap) > 3 {
			t.Fatalf("shift %d: snapshot skipped %d bytes", shift, r.size-len(snap))
		}
	}
}

func TestRingNewlineSearchIsBounded(t *testing.T) {
	r := newRing(64 << 10)
	r.write(bytes.Repeat([]byte("x"), 100<<10))
	// A newline beyond the first 4 KiB of what is kept is not used.
	r.write(append(bytes.Repeat([]byte("y"), 10<<10), '\n', 'z'))
	snap := r.snapshot()
	if len(snap) != 64<<10 {
		t.Fatalf("snapshot skipped to a far newline: %d bytes", len(snap))
	}
}

func TestRingNewlineFoundAcrossPhysicalWrap(t *testing.T) {
	r := newRing(100)
	r.write(bytes.Repeat([]byte("a"), 100))
	p := append([]byte("bbbbb\n"), bytes.Repeat([]byte("c"), 89)...)
	r.write(p) // head is now 95: the oldest 5 bytes sit at the end of buf
	if r.head != 95 {
		t.Fatalf("head %d, the test wants a physical wrap", r.head)
	}
	if got, want := string(r.snapshot()), string(p[6:]); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRingReleaseEmptiesAndAllowsReuse(t *testing.T) {
	r := newRing(64 << 10)
	r.write(bytes.Repeat([]byte("abc\n"), 40<<10))
	r.release()
	if r.buf != nil || r.size != 0 || len(r.snapshot()) != 0 {
		t.Fatalf("released ring: %d bytes in %d", r.size, len(r.buf))
	}
	r.release() // idempotent
	r.write([]byte("again\n"))
	if got := string(r.snapshot()); got != "again\n" {
		t.Fatalf("after release: %q", got)
	}
	r.release()
}
