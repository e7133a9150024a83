package deploy

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

const dockerfile = "docker/api/Dockerfile"

// stage is one FROM section of a Dockerfile: its instructions with
// continuation lines joined.
type stage struct {
	base, name string
	lines      []string
}

func dockerStages(t *testing.T) []stage {
	t.Helper()
	var stages []stage
	var cur *stage
	joined := strings.ReplaceAll(readRepoFile(t, dockerfile), "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if strings.EqualFold(f[0], "FROM") {
			s := stage{base: f[1]}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				s.name = f[3]
			}
			stages = append(stages, s)
			cur = &stages[len(stages)-1]
			continue
		}
		if cur == nil {
			continue
		}
		cur.lines = append(cur.lines, line)
	}
	if len(stages) < 3 {
		t.Fatalf("%s: %d stages, want assets, build and runtime", dockerfile, len(stages))
	}
	return stages
}

func (s stage) instr(kind string) []string {
	var out []string
	for _, l := range s.lines {
		if f := strings.Fields(l); strings.EqualFold(f[0], kind) {
			out = append(out, strings.TrimSpace(l[len(f[0]):]))
		}
	}
	return out
}

// dockerfileArg is the default of an ARG of the final stage.
func dockerfileArg(t *testing.T, name string) string {
	t.Helper()
	st := dockerStages(t)
	for _, a := range st[len(st)-1].instr("ARG") {
		if k, v, ok := strings.Cut(a, "="); ok && k == name {
			return v
		}
	}
	t.Fatalf("%s: the final stage has no ARG %s with a default", dockerfile, name)
	return ""
}

func TestDockerfile(t *testing.T) {
	st := dockerStages(t)
	assets, build, final := st[0], st[1], st[len(st)-1]

	// Assets come from the Makefile's own target, so they cannot drift.
	if !containsSub(assets.instr("RUN"), "make assets") {
		t.Errorf("the assets stage should run `make assets`: %v", assets.instr("RUN"))
	}
	// One static, reproducible binary.
	var built bool
	for _, r := range build.instr("RUN") {
		if strings.Contains(r, "go build") {
			built = true
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/aicli", "-X main.version="} {
				if !strings.Contains(r, want) {
					t.Errorf("the go build lacks %s: %s", want, r)
				}
			}
		}
	}
	if !built {
		t.Error("the build stage runs no go build")
	}
	if !containsSub(build.instr("COPY"), "--from="+assets.name+" ") {
		t.Error("the build stage does not take static/dist from the assets stage (it is embedded)")
	}

	// The runtime image: one binary, a non-root user, a healthcheck.
	copies := final.instr("COPY")
	var binaries int
	for _, c := range copies {
		if !strings.Contains(c, "--from=") {
			t.Errorf("the final stage copies from the build context: %s", c)
		}
		if strings.HasSuffix(c, "/usr/local/bin/aicli") {
			binaries++
		}
	}
	if binaries != 1 {
		t.Errorf("the final stage should copy the one binary once, copies: %v", copies)
	}
	users := final.instr("USER")
	if len(users) == 0 {
		t.Fatal("the final stage has no USER: it would run as root")
	}
	user := users[len(users)-1]
	uid := dockerfileArg(t, "APP_UID")
	if user != "${APP_UID}:${APP_GID}" || uid == "0" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("the final stage runs as %q (APP_UID %s): want a non-root uid:gid", user, uid)
	}
	if hc := strings.Join(final.instr("HEALTHCHECK"), " "); !strings.Contains(hc, `"/usr/local/bin/aicli", "healthcheck"`) {
		t.Errorf("HEALTHCHECK %q does not run aicli healthcheck", hc)
	}
	if e := final.instr("EXPOSE"); len(e) != 1 || e[0] != "8080" {
		t.Errorf("EXPOSE %v, want 8080 (the compose files and nginx use it)", e)
	}
	if ep := final.instr("ENTRYPOINT"); len(ep) != 1 || ep[0] != `["/usr/local/bin/aicli"]` {
		t.Errorf("ENTRYPOINT %v", ep)
	}
	if !regexp.MustCompile(`^(gcr\.io/distroless/static|scratch|alpine)`).MatchString(final.base) {
		t.Errorf("the final stage is based on %s: want a minimal image", final.base)
	}

	// Secrets and build output stay out of the build context.
	ignore := strings.Split(readRepoFile(t, ".dockerignore"), "\n")
	for _, want := range []string{".git", ".env", "deploy.env", "node_modules", "data"} {
		if !slices.Contains(ignore, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

// containsSub reports whether some element contains s.
func containsSub(list []string, s string) bool {
	for _, l := range list {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}
