package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every variable the code reads is documented in .env.example, and every
// documented variable is read: the two cannot drift apart.
func TestEnvExampleDocumentsEveryVariable(t *testing.T) {
	// Every non-test file of the package: each part of the configuration
	// is parsed in its own file.
	var src []byte
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, b...)
	}
	doc, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	for _, m := range regexp.MustCompile(`"((?:AICODE|DOCKER)_[A-Z_]+|DATABASE_URL)"`).FindAllStringSubmatch(string(src), -1) {
		read[m[1]] = true
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z][A-Z0-9_]+)=`).FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	if len(read) < 20 {
		t.Fatalf("found only %d variables in config.go; the pattern is stale", len(read))
	}
	for v := range read {
		if !documented[v] {
			t.Errorf("%s is read by config.go but not documented in .env.example", v)
		}
	}
	for v := range documented {
		if !read[v] {
			t.Errorf("%s is documented in .env.example but config.go does not read it", v)
		}
	}
}
