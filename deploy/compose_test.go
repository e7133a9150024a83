package deploy

import (
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"aicode/services/config"
)

const (
	devCompose  = "docker-compose.yml"
	prodCompose = "docker-compose.prod.yml"
)

func composeFiles(t *testing.T) map[string]*types.Project {
	return map[string]*types.Project{
		devCompose:  mustLoadCompose(t, devCompose, nil),
		prodCompose: mustLoadCompose(t, prodCompose, deployEnv(t, prodSecrets())),
	}
}

// Both files load with the compose loader (schema, interpolation,
// references between services, networks, volumes and secrets).
func TestComposeFilesLoad(t *testing.T) {
	for name, p := range composeFiles(t) {
		for _, want := range []string{"postgres", "redis", "minio", "docker-proxy", "app", "nginx"} {
			if _, ok := p.Services[want]; !ok {
				t.Errorf("%s: no service %q", name, want)
			}
		}
	}
	p := mustLoadCompose(t, prodCompose, deployEnv(t, prodSecrets()))
	for _, want := range []string{"prometheus", "grafana"} {
		if _, ok := p.Services[want]; !ok {
			t.Errorf("%s: no service %q", prodCompose, want)
		}
	}
}

// Production refuses to start without each of its secrets, naming the
// missing one; development needs none.
func TestComposeProdRequiresSecrets(t *testing.T) {
	doc := envFile(t, "deploy.env.example")
	for name := range prodSecrets() {
		if _, ok := doc[name]; !ok {
			t.Errorf("%s is required but not listed in deploy.env.example", name)
		}
		env := deployEnv(t, prodSecrets())
		env[name] = ""
		_, err := loadCompose(t, prodCompose, env)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: %v, want an error naming it", name, err)
		}
	}
	env := deployEnv(t, prodSecrets())
	delete(env, "WORKSPACES_DIR")
	if _, err := loadCompose(t, prodCompose, env); err == nil || !strings.Contains(err.Error(), "WORKSPACES_DIR") {
		t.Errorf("without WORKSPACES_DIR: %v", err)
	}
	if _, err := loadCompose(t, devCompose, nil); err != nil {
		t.Errorf("development must start with no settings: %v", err)
	}
}

// Every variable the compose files interpolate is documented in
// deploy.env.example, and every documented one is used. None of them is
// also one the app reads from its own environment unless the compose file
// passes it through (the app's settings belong in .env.example).
func TestComposeVariablesDocumented(t *testing.T) {
	used := map[string]bool{}
	re := regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)`)
	for _, f := range []string{devCompose, prodCompose} {
		for _, m := range re.FindAllStringSubmatch(readRepoFile(t, f), -1) {
			used[m[1]] = true
		}
	}
	doc := envFile(t, "deploy.env.example")
	for v := range used {
		if _, ok := doc[v]; !ok {
			t.Errorf("%s is used by a compose file but not documented in deploy.env.example", v)
		}
	}
	for v := range doc {
		if !used[v] {
			t.Errorf("%s is documented in deploy.env.example but no compose file uses it", v)
		}
	}
	// A variable in both files must be one of the app's settings that the
	// compose files pass through under its own name (the secrets every
	// replica shares).
	appDoc := envFile(t, ".env.example")
	prod := readRepoFile(t, prodCompose)
	for v := range doc {
		if _, ok := appDoc[v]; ok && !strings.Contains(prod, v+": ${"+v+":?") {
			t.Errorf("%s is in both .env.example and deploy.env.example", v)
		}
	}
}

func TestComposeHealthchecksAndDependencies(t *testing.T) {
	for name, p := range composeFiles(t) {
		for sname, s := range p.Services {
			hc := s.HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
				t.Errorf("%s: service %s has no healthcheck", name, sname)
			}
			if s.Restart != types.RestartPolicyAlways && s.Restart != types.RestartPolicyUnlessStopped {
				t.Errorf("%s: service %s restart policy %q", name, sname, s.Restart)
			}
			for dep, d := range s.DependsOn {
				if _, ok := p.Services[dep]; !ok {
					t.Errorf("%s: %s depends on unknown service %s", name, sname, dep)
				}
				if d.Condition != types.ServiceConditionHealthy {
					t.Errorf("%s: %s waits for %s with condition %q, want service_healthy", name, sname, dep, d.Condition)
				}
			}
			for _, v := range s.Volumes {
				if v.Type == types.VolumeTypeVolume {
					if _, ok := p.Volumes[v.Source]; !ok {
						t.Errorf("%s: %s mounts undeclared volume %s", name, sname, v.Source)
					}
				}
			}
		}
		app := p.Services["app"]
		for _, dep := range []string{"postgres", "redis", "minio", "docker-proxy"} {
			if _, ok := app.DependsOn[dep]; !ok {
				t.Errorf("%s: app does not wait for %s", name, dep)
			}
		}
		if _, ok := p.Services["nginx"].DependsOn["app"]; !ok {
			t.Errorf("%s: nginx does not wait for app", name)
		}
		if hc := app.HealthCheck; hc != nil && !slices.Contains(hc.Test, "healthcheck") {
			t.Errorf("%s: app healthcheck %v does not run `aicli healthcheck`", name, hc.Test)
		}
	}
	if !strings.Contains(readRepoFile(t, "cmd/aicli/main.go"), `case "healthcheck":`) {
		t.Error("the compose files and the Dockerfile run `aicli healthcheck`, which cmd/aicli no longer has")
	}
}

// The app never touches the Docker socket: only the proxy mounts it,
// read-only, and the app's DOCKER_HOST is the proxy.
func TestComposeDockerOnlyThroughProxy(t *testing.T) {
	for name, p := range composeFiles(t) {
		for sname, s := range p.Services {
			for _, v := range s.Volumes {
				if !strings.Contains(v.Source, "docker.sock") && !strings.Contains(v.Target, "docker.sock") {
					continue
				}
				if sname != "docker-proxy" {
					t.Errorf("%s: service %s mounts the Docker socket", name, sname)
				} else if !v.ReadOnly {
					t.Errorf("%s: docker-proxy mounts the Docker socket writable", name)
				}
			}
			if s.Privileged {
				t.Errorf("%s: service %s is privileged", name, sname)
			}
		}
		app := p.Services["app"]
		if got := env(app, "DOCKER_HOST"); got != "tcp://docker-proxy:2375" {
			t.Errorf("%s: app DOCKER_HOST = %q, want tcp://docker-proxy:2375", name, got)
		}
		proxy := p.Services["docker-proxy"]
		if len(proxy.Ports) > 0 {
			t.Errorf("%s: docker-proxy publishes ports %v", name, proxy.Ports)
		}
		if !proxy.ReadOnly || !slices.Contains(proxy.CapDrop, "ALL") || len(proxy.CapAdd) > 0 {
			t.Errorf("%s: docker-proxy should be read-only with every capability dropped", name)
		}
		if proxy.Image != app.Image || !slices.Equal(proxy.Command, types.ShellCommand{"docker-proxy", "-listen", ":2375"}) {
			t.Errorf("%s: docker-proxy should run `aicli docker-proxy -listen :2375` from the app's image, not %s %v", name, proxy.Image, proxy.Command)
		}
		if hc := proxy.HealthCheck; hc == nil || !slices.Contains(hc.Test, "-check") {
			t.Errorf("%s: docker-proxy healthcheck should be `aicli docker-proxy -check`", name)
		}
		// The proxy shares only internal networks, and only with the app.
		for net := range proxy.Networks {
			if !p.Networks[net].Internal {
				t.Errorf("%s: docker-proxy is on network %s, which is not internal", name, net)
			}
			for sname, s := range p.Services {
				if _, on := s.Networks[net]; on && sname != "app" && sname != "docker-proxy" {
					t.Errorf("%s: %s can reach the Docker API proxy on %s", name, sname, net)
				}
			}
			if _, on := app.Networks[net]; !on {
				t.Errorf("%s: the app is not on the proxy's network %s", name, net)
			}
		}
	}
}

// Workspaces are created by the host's engine with host paths, so the
// workspaces root is bound at the same absolute path, and the app runs as
// the workspace user.
func TestComposeWorkspacesSamePath(t *testing.T) {
	uid := dockerfileArg(t, "APP_UID") + ":" + dockerfileArg(t, "APP_GID")
	for name, p := range composeFiles(t) {
		app := p.Services["app"]
		root := env(app, "AICODE_WORKSPACES_ROOT")
		if !filepath.IsAbs(root) {
			t.Errorf("%s: AICODE_WORKSPACES_ROOT %q is not absolute", name, root)
		}
		var bound bool
		for _, v := range app.Volumes {
			if v.Type == types.VolumeTypeBind && v.Target == root {
				bound = true
				if v.Source != root {
					t.Errorf("%s: workspaces bound from %s at %s: the paths must be equal", name, v.Source, v.Target)
				}
				if v.ReadOnly {
					t.Errorf("%s: workspaces bound read-only", name)
				}
			}
		}
		if !bound {
			t.Errorf("%s: AICODE_WORKSPACES_ROOT %s is not bind-mounted", name, root)
		}
		if got := env(app, "AICODE_WORKSPACE_USER"); got != uid {
			t.Errorf("%s: AICODE_WORKSPACE_USER %q, but the image runs the app as %s", name, got, uid)
		}
		if app.User != "" && app.User != uid {
			t.Errorf("%s: app runs as %q, not the workspace user %s", name, app.User, uid)
		}
	}
}

// Every variable passed to the app is one it reads, and the settings make
// a valid configuration for this stack.
func TestComposeAppEnvironment(t *testing.T) {
	reads := appReadsVariables(t)
	for name, p := range composeFiles(t) {
		app := p.Services["app"]
		// .env, copied from .env.example as it is, under what the compose
		// file sets (environment wins over env_file).
		vals := envFile(t, ".env.example")
		for k, v := range app.Environment {
			if !reads[k] {
				t.Errorf("%s: the app is given %s, which it does not read", name, k)
			}
			if v == nil {
				t.Errorf("%s: %s has no value", name, k)
				continue
			}
			vals[k] = *v
		}
		cfg, err := config.LoadFrom(func(k string) string { return vals[k] })
		if err != nil {
			t.Errorf("%s: the app's configuration is invalid:\n%v", name, err)
			continue
		}
		if !strings.HasPrefix(cfg.DatabaseURL, "postgres://") || !strings.Contains(cfg.DatabaseURL, "@postgres:5432/") {
			t.Errorf("%s: DATABASE_URL does not point at the postgres service", name)
		}
		if !strings.Contains(cfg.Redis.URL, "@redis:6379") {
			t.Errorf("%s: AICODE_REDIS_URL does not point at the redis service", name)
		}
		if cfg.Blob.MinIOEndpoint != "minio:9000" {
			t.Errorf("%s: AICODE_MINIO_ENDPOINT = %q", name, cfg.Blob.MinIOEndpoint)
		}
		// The key the app asks for is the one MinIO's KMS holds, and that
		// is a 32-byte key.
		held, key, _ := strings.Cut(env(p.Services["minio"], "MINIO_KMS_SECRET_KEY"), ":")
		if raw, err := base64.StdEncoding.DecodeString(key); cfg.Blob.KMSKey == "" || held != cfg.Blob.KMSKey || err != nil || len(raw) != 32 {
			t.Errorf("%s: the app encrypts with KMS key %q; MinIO holds %q (%d bytes, %v)", name, cfg.Blob.KMSKey, held, len(raw), err)
		}
		if _, port, _ := net.SplitHostPort(cfg.ListenAddr); port != "8080" || !strings.HasPrefix(cfg.ListenAddr, "0.0.0.0:") {
			t.Errorf("%s: the app listens on %s; nginx and the image expect 0.0.0.0:8080", name, cfg.ListenAddr)
		}
		if !filepath.IsAbs(cfg.DataDir) || !mountedAt(app, cfg.DataDir) {
			t.Errorf("%s: AICODE_DATA_DIR %s is not a mounted volume", name, cfg.DataDir)
		}
		// Only nginx's headers are believed, and nginx has that address.
		nginxAddr := ""
		for _, n := range p.Services["nginx"].Networks {
			if n != nil && n.Ipv4Address != "" {
				nginxAddr = n.Ipv4Address
			}
		}
		if nginxAddr == "" || !slices.Equal(cfg.TrustedProxies, []string{nginxAddr}) {
			t.Errorf("%s: AICODE_TRUSTED_PROXIES %v, nginx's address %q", name, cfg.TrustedProxies, nginxAddr)
		}
	}

	// Production: every replica must share these, so none may be left to
	// a per-replica default.
	p := mustLoadCompose(t, prodCompose, deployEnv(t, prodSecrets()))
	app := p.Services["app"]
	for _, k := range []string{"AICODE_SESSION_SECRET", "AICODE_SECRET_KEY", "AICODE_METRICS_TOKEN", "AICODE_REDIS_URL", "AICODE_MINIO_ENDPOINT", "AICODE_MINIO_KMS_KEY", "AICODE_BASE_URL", "DATABASE_URL"} {
		if env(app, k) == "" {
			t.Errorf("production: %s is not set for the app", k)
		}
	}
	if app.Deploy == nil || app.Deploy.Replicas == nil || *app.Deploy.Replicas < 2 {
		t.Errorf("production: the app should run at least two replicas")
	}
}

// In production only nginx publishes ports (Grafana only on loopback),
// and every service has resource limits.
func TestComposeProdExposureAndLimits(t *testing.T) {
	p := mustLoadCompose(t, prodCompose, deployEnv(t, prodSecrets()))
	for sname, s := range p.Services {
		for _, port := range s.Ports {
			switch {
			case sname == "nginx":
			case sname == "grafana" && port.HostIP == "127.0.0.1":
			default:
				t.Errorf("production: %s publishes %s:%s->%d", sname, port.HostIP, port.Published, port.Target)
			}
		}
		if s.Deploy == nil || s.Deploy.Resources.Limits == nil ||
			s.Deploy.Resources.Limits.MemoryBytes == 0 || s.Deploy.Resources.Limits.NanoCPUs == 0 {
			t.Errorf("production: %s has no memory and CPU limits", sname)
		}
		if s.Restart != types.RestartPolicyAlways {
			t.Errorf("production: %s restart policy %q, want always", sname, s.Restart)
		}
	}
	dev := mustLoadCompose(t, devCompose, nil)
	for sname, s := range dev.Services {
		for _, port := range s.Ports {
			if sname != "nginx" || port.HostIP != "127.0.0.1" {
				t.Errorf("development: %s publishes %s:%s (only nginx, on loopback)", sname, port.HostIP, port.Published)
			}
		}
	}
	// Prometheus reads the app's metrics token from a secret.
	if sec, ok := p.Secrets["metrics_token"]; !ok || sec.Environment != "AICODE_METRICS_TOKEN" {
		t.Errorf("production: the metrics_token secret should come from AICODE_METRICS_TOKEN: %+v", sec)
	}
}

// Every file or directory a service mounts from the repository exists.
func TestComposeMountedFilesExist(t *testing.T) {
	root := repoPath(t, ".")
	want := map[string]bool{
		"docker/nginx/nginx.conf":          false,
		"docker/nginx/conf.d":              false,
		"docker/prometheus/prometheus.yml": false,
		"docker/grafana/provisioning":      false,
		"docker/grafana/dashboards":        false,
	}
	for name, p := range composeFiles(t) {
		for sname, s := range p.Services {
			for _, v := range s.Volumes {
				if v.Type != types.VolumeTypeBind || !strings.HasPrefix(v.Source, root+string(filepath.Separator)) {
					continue
				}
				rel, _ := filepath.Rel(root, v.Source)
				if _, ok := want[rel]; ok {
					want[rel] = true
				}
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s: %s mounts %s, which is missing: %v", name, sname, rel, err)
				}
			}
		}
	}
	var missing []string
	for rel, seen := range want {
		if !seen {
			missing = append(missing, rel)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("not mounted by any service: %v", missing)
	}
	// What the monitoring files expect from the compose file: the token
	// file, the replicas' DNS name and port, the dashboards' directory.
	prom := readRepoFile(t, "docker/prometheus/prometheus.yml")
	for _, want := range []string{"credentials_file: /run/secrets/metrics_token", "names: [app]", "port: 8080"} {
		if !strings.Contains(prom, want) {
			t.Errorf("docker/prometheus/prometheus.yml lacks %q, which the compose file provides", want)
		}
	}
	p := mustLoadCompose(t, prodCompose, deployEnv(t, prodSecrets()))
	if s := p.Services["prometheus"].Secrets; len(s) != 1 || s[0].Source != "metrics_token" || s[0].Target != "metrics_token" {
		t.Errorf("prometheus secrets %+v, want metrics_token at /run/secrets/metrics_token", s)
	}
	prov := readRepoFile(t, "docker/grafana/provisioning/dashboards/aicode.yml")
	if m := regexp.MustCompile(`path: (\S+)`).FindStringSubmatch(prov); m == nil || !mountedAt(p.Services["grafana"], m[1]) {
		t.Errorf("Grafana loads dashboards from %v, which is not where they are mounted", m)
	}

	// nginx's includes all resolve to files in docker/nginx.
	for _, inc := range regexp.MustCompile(`include (/etc/nginx/conf\.d/[^;*]+);`).FindAllStringSubmatch(nginxSources(t), -1) {
		rel := strings.Replace(inc[1], "/etc/nginx/conf.d/", "docker/nginx/conf.d/", 1)
		if _, err := os.Stat(repoPath(t, rel)); err != nil {
			t.Errorf("nginx includes %s: %v", inc[1], err)
		}
	}
}

func env(s types.ServiceConfig, k string) string {
	if v, ok := s.Environment[k]; ok && v != nil {
		return *v
	}
	return ""
}

func mountedAt(s types.ServiceConfig, target string) bool {
	for _, v := range s.Volumes {
		if v.Target == target {
			return true
		}
	}
	return false
}
