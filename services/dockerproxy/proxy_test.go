package dockerproxy

import (
	"net/url"
	"strings"
	"testing"
)

func TestAllowed(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         bool
	}{
		{"HEAD", "/_ping", true},
		{"GET", "/v1.41/_ping", true},
		{"GET", "/v1.47/events", true},
		{"GET", "/v1.41/images/aicode-workspace:latest/json", true},
		{"GET", "/v1.41/images/reg.example.com:5000/a/b@sha256:0a1b/json", true},
		{"POST", "/v1.41/containers/create", true},
		{"DELETE", "/v1.41/containers/aicode-x-1", true},
		{"POST", "/v1.41/exec/abc123/start", true},

		{"POST", "/v1.41/images/create", false},
		{"DELETE", "/v1.41/images/x", false},
		{"GET", "/v1.41/volumes", false},
		{"POST", "/v1.41/build", false},
		{"GET", "/v1.41/containers/x/archive", false},
		{"POST", "/v1.41/containers/x/kill", false},
		{"POST", "/v1.41/containers/x/attach", false},
		{"GET", "/v1.41/containers/create", false},
		{"POST", "/v1.41/containers/json", false},
		{"GET", "/v1.41/containers/x/../../volumes", false},
		{"GET", "/v1.41//volumes", false},
		{"GET", "/v1.41/containers/x%2F..%2F..%2Fvolumes/json", false},
		{"GET", "/vX/info", false},
	} {
		u, err := url.Parse(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got, why := Allowed(c.method, u); got != c.want {
			t.Errorf("%s %s: allowed %v (%s), want %v", c.method, c.path, got, why, c.want)
		}
	}
}

func TestCheckCreate(t *testing.T) {
	body := func(hc string) []byte {
		return []byte(`{"Image":"img","Env":["A=\"Privileged\":true"],"Labels":{"privileged":"true"},"HostConfig":{"CapDrop":["ALL"],"CapAdd":null,"Privileged":false,` +
			`"Mounts":[{"Type":"bind","Source":"/srv/ws/a","Target":"/workspace"}]` + hc + `}}`)
	}
	if why := CheckCreate(body("")); why != "" {
		t.Fatalf("the app's kind of create refused: %s", why)
	}
	for hc, want := range map[string]string{
		`,"Privileged":true`:                         "privileged",
		`,"privileged":true`:                         "privileged",
		`,"Privil\u0065ged":true`:                    "privileged",
		`,"Privileged":false,"Privileged":true`:      "privileged",
		`,"CapAdd":["NET_ADMIN"]`:                    "capabilities",
		`,"Devices":[{"PathOnHost":"/dev/sda"}]`:     "devices",
		`,"Binds":["/:/host"]`:                       "Binds",
		`,"PidMode":"host"`:                          "PidMode",
		`,"usernsmode":"HOST"`:                       "UsernsMode",
		`,"SecurityOpt":["seccomp=unconfined"]`:      "unconfined",
		`,"Mounts":[{"Type":"volume","Source":"x"}]`: "mounts",
	} {
		if why := CheckCreate(body(hc)); !strings.Contains(why, want) {
			t.Errorf("%s: %q, want a refusal naming %s", hc, why, want)
		}
	}
	if why := CheckCreate([]byte(`{"HostConfig":`)); why == "" {
		t.Error("invalid JSON accepted")
	}
}
