package gitwork

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// ---- parsing (fixtures shaped like git's -z output) ----

func z(fields ...string) []byte { return []byte(strings.Join(fields, "\x00") + "\x00") }

func TestParseStatus(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want Repo
	}{
		{"clean", z("# branch.oid 0123456789abcdef0123456789abcdef01234567", "# branch.head main"),
			Repo{IsRepo: true, Head: "0123456789abcdef0123456789abcdef01234567", Branch: "main"}},
		{"unborn", z("# branch.oid (initial)", "# branch.head trunk"),
			Repo{IsRepo: true, Branch: "trunk"}},
		{"detached", z("# branch.oid 0123456789abcdef0123456789abcdef01234567", "# branch.head (detached)"),
			Repo{IsRepo: true, Head: "0123456789abcdef0123456789abcdef01234567"}},
		{"upstream and stash headers", z("# branch.oid abc", "# branch.head feat/x y", "# branch.upstream origin/feat", "# branch.ab +1 -2", "# stash 3"),
			Repo{IsRepo: true, Head: "abc", Branch: "feat/x y"}},
		{"untracked", z("# branch.oid (initial)", "# branch.head main", "? new file.txt"),
			Repo{IsRepo: true, Branch: "main", Dirty: true}},
		{"rename whose origin looks like a header", z("# branch.oid abc", "# branch.head main",
			"2 R. N... 100644 100644 100644 abc abc R100 new", "# branch.head evil"),
			Repo{IsRepo: true, Head: "abc", Branch: "main", Dirty: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseStatus(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
	if _, err := parseStatus([]byte("")); err == nil {
		t.Error("no error for empty output")
	}
}

func TestParseNameStatus(t *testing.T) {
	in := z(
		"M", "plain.go",
		"A", "with space/and\ttab.txt",
		"A", "new\nline.txt",
		"D", "gone/ünïcödé ✓.md",
		"R100", "old name.txt", "new name.txt",
		"R087", "a\nb", "c d",
		"C075", "src.c", "copy.c",
		"T", "link",
		"M", "-starts-with-dash",
	)
	want := []FileChange{
		{Path: "plain.go", Status: "modified"},
		{Path: "with space/and\ttab.txt", Status: "added"},
		{Path: "new\nline.txt", Status: "added"},
		{Path: "gone/ünïcödé ✓.md", Status: "deleted"},
		{Path: "new name.txt", OldPath: "old name.txt", Status: "renamed"},
		{Path: "c d", OldPath: "a\nb", Status: "renamed"},
		{Path: "copy.c", OldPath: "src.c", Status: "copied"},
		{Path: "link", Status: "type-changed"},
		{Path: "-starts-with-dash", Status: "modified"},
	}
	got, err := parseNameStatus(in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if got, err := parseNameStatus(nil); err != nil || len(got) != 0 {
		t.Errorf("empty: %v %v", got, err)
	}
	// Cut short by the output bound: whatever is incomplete is dropped.
	for _, cut := range []int{len(z("M", "plain.go", "R100", "old")), len(z("M", "plain.go", "R100", "old name.txt")) + 3} {
		got, err := parseNameStatus(in[:cut])
		if err != nil || len(got) != 1 || got[0].Path != "plain.go" {
			t.Errorf("cut at %d: %+v %v", cut, got, err)
		}
	}
	if _, err := parseNameStatus(z("Q", "x")); err == nil {
		t.Error("unknown status accepted")
	}
}

func TestParseNumstat(t *testing.T) {
	in := z(
		"3\t1\tplain.go",
		"10\t0\twith space/and\ttab.txt",
		"1\t0\tnew\nline.txt",
		"-\t-\timage.png",
		"0\t0\t", "old name.txt", "new name.txt",
		"2\t5\t", "a\nb", "c d",
	)
	want := []lineCounts{
		{path: "plain.go", additions: 3, deletions: 1},
		{path: "with space/and\ttab.txt", additions: 10},
		{path: "new\nline.txt", additions: 1},
		{path: "image.png", binary: true},
		{path: "new name.txt"},
		{path: "c d", additions: 2, deletions: 5},
	}
	got, err := parseNumstat(in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	cut := len(z("3\t1\tplain.go", "10\t0\twith space/and\ttab.txt", "1\t0\tnew\nline.txt", "-\t-\timage.png", "0\t0\t", "old name.txt"))
	if got, err := parseNumstat(in[:cut]); err != nil || len(got) != 4 {
		t.Errorf("cut inside a rename: %+v %v", got, err)
	}
	for _, bad := range [][]byte{z("x\t1\tp"), z("1\t-\tp"), z("no tabs"), z("1\tp")} {
		if _, err := parseNumstat(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestJoinCounts(t *testing.T) {
	files := []FileChange{
		{Path: "a", Status: "added"},
		{Path: "new", OldPath: "old", Status: "renamed"},
		{Path: "bin", Status: "modified"},
		{Path: "missing", Status: "deleted"},
	}
	counts := []lineCounts{{path: "bin", binary: true}, {path: "new", additions: 1, deletions: 2}, {path: "a", additions: 7}}
	got := joinCounts(files, counts)
	want := []FileChange{
		{Path: "a", Status: "added", Additions: 7},
		{Path: "new", OldPath: "old", Status: "renamed", Additions: 1, Deletions: 2},
		{Path: "bin", Status: "modified", Binary: true},
		{Path: "missing", Status: "deleted"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

func TestCutDiff(t *testing.T) {
	d := []byte("line one\nline two\nline three\n")
	if got, tr := cutDiff(d, len(d)); !bytes.Equal(got, d) || tr {
		t.Errorf("whole: %q %v", got, tr)
	}
	if got, tr := cutDiff(d, 20); string(got) != "line one\nline two\n" || !tr {
		t.Errorf("cut: %q %v", got, tr)
	}
	if got, tr := cutDiff([]byte("one very long line"), 5); string(got) != "one v" || !tr {
		t.Errorf("no newline: %q %v", got, tr)
	}
}

func TestQuoteStderr(t *testing.T) {
	got := quoteStderr([]byte("hint: do this\nfatal: it broke\n\nerror: badly \xff\n"))
	if got != "fatal: it broke; error: badly ?" {
		t.Errorf("got %q", got)
	}
	long := quoteStderr([]byte(strings.Repeat("é", 3000)))
	if len(long) > stderrMax+len("…") || !utf8.ValidString(long) || !strings.HasSuffix(long, "…") {
		t.Errorf("long stderr: %d bytes", len(long))
	}
}
