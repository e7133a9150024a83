// Package testutil boots the real application against the real Docker
// engine (and, where asked, the real PostgreSQL) for integration, browser
// and benchmark tests.
package testutil

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"aicode/services/engine"
)

var (
	engineOnce sync.Once
	sharedEng  *engine.Engine
	engineErr  error
)

// Engine returns the process-wide client for the local engine, failing the
// test (never skipping it) when none answers: CI always provides one. The
// first call pings with a generous timeout, since a busy engine (many tests
// creating containers at once) can be slow to answer.
func Engine(t testing.TB) *engine.Engine {
	t.Helper()
	engineOnce.Do(func() {
		sharedEng, engineErr = engine.New(engine.Options{})
		if engineErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		engineErr = sharedEng.Ping(ctx)
	})
	if engineErr != nil {
		t.Fatalf("these tests need a Docker engine (DOCKER_HOST or /var/run/docker.sock); .ci/run starts one: %v", engineErr)
	}
	return sharedEng
}

var (
	imageOnce sync.Once
	imageRef  string
	imageErr  error
)

// BusyboxPath is where Debian's busybox-static installs the binary.
const BusyboxPath = "/bin/busybox"

// BusyboxImage makes (once) a tiny workspace image from the host's static
// busybox: no registry is needed. It has a non-root user dev (1000:1000), a
// /workspace directory and a shell. The tag carries a hash of the binary, so
// an existing import is reused.
func BusyboxImage(t testing.TB) string {
	t.Helper()
	eng := Engine(t)
	imageOnce.Do(func() { imageRef, imageErr = importBusybox(eng) })
	if imageErr != nil {
		t.Fatalf("build test image: %v", imageErr)
	}
	return imageRef
}

func importBusybox(eng *engine.Engine) (string, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return "", &setupError{"read " + BusyboxPath + " (install Debian's busybox-static): " + err.Error()}
	}
	sum := sha256.Sum256(bin)
	ref := "aicode-test-busybox:" + hex.EncodeToString(sum[:6])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if ok, err := eng.ImageExists(ctx, ref); err != nil {
		return "", err
	} else if ok {
		return ref, nil
	}
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return "", &setupError{"list busybox applets: " + err.Error()}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64, uid int) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: uid, ModTime: now})
	}
	file := func(name string, mode int64, data []byte) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now})
		tw.Write(data)
	}
	for _, d := range []string{"bin/", "etc/", "root/", "proc/", "sys/", "dev/", "usr/", "usr/bin/", "var/"} {
		dir(d, 0o755, 0)
	}
	dir("tmp/", 0o1777, 0)
	dir("home/", 0o755, 0)
	dir("home/dev/", 0o755, 1000)
	dir("workspace/", 0o755, 1000)
	file("bin/busybox", 0o755, bin)
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: now})
	}
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\n"))
	file("etc/group", 0o644, []byte("root:x:0:\ndev:x:1000:\n"))
	if err := tw.Close(); err != nil {
		return "", err
	}
	changes := []string{"ENV PATH=/bin:/usr/bin", "WORKDIR /workspace", "USER 1000:1000"}
	if err := eng.ImportImage(ctx, &buf, ref, changes); err != nil {
		return "", err
	}
	return ref, nil
}

type setupError struct{ msg string }

func (e *setupError) Error() string { return e.msg }

// RunContainer creates and starts a container for a test and removes it
// when the test ends. Unset fields of spec get test defaults: a unique
// name, the busybox test image, a temporary directory bound at
// /workspace, 128 MiB, 64 processes and no network.
func RunContainer(t testing.TB, eng *engine.Engine, spec engine.ContainerSpec) string {
	t.Helper()
	if spec.Name == "" {
		spec.Name = UniqueName("aicode-test")
	}
	if spec.Image == "" {
		spec.Image = BusyboxImage(t)
	}
	if spec.BindSource == "" {
		spec.BindSource, spec.BindTarget = t.TempDir(), "/workspace"
	}
	if spec.MemoryBytes == 0 {
		spec.MemoryBytes = 128 << 20
	}
	if spec.PidsLimit == 0 {
		spec.PidsLimit = 64
	}
	if spec.NetworkMode == "" {
		spec.NetworkMode = "none"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := eng.CreateContainer(ctx, spec)
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := eng.RemoveContainer(ctx, id); err != nil {
			t.Errorf("remove container: %v", err)
		}
	})
	if err := eng.StartContainer(ctx, id); err != nil {
		t.Fatalf("start container: %v", err)
	}
	return id
}
