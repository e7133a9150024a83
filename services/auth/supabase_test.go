package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUsernameFromEmail(t *testing.T) {
	for email, want := range map[string]string{
		"ada@example.com":                  "ada",
		"John.Doe+tag@example.com":         "john.doe-tag",
		"_xy@example.com":                  "xy",
		"a@example.com":                    "user",
		"ünïcode@example.com":              "n-code",
		"-@example.com":                    "user",
		strings.Repeat("ab", 30) + "@x.io": strings.Repeat("ab", 16),
		"dots...-@example.com":             "dots",
	} {
		got := usernameFromEmail(email)
		if got != want {
			t.Errorf("usernameFromEmail(%q) = %q, want %q", email, got, want)
		}
		if !usernameRe.MatchString(got) {
			t.Errorf("usernameFromEmail(%q) = %q is not a valid username", email, got)
		}
	}
}

func TestAsGoTrueError(t *testing.T) {
	e := asGoTrueError(errors.New(`response status code 400: {"code":400,"error_code":"invalid_credentials","msg":"Invalid login credentials"}`))
	if e.Status != 400 || e.Code != "invalid_credentials" || e.Msg != "Invalid login credentials" || !e.rejected() {
		t.Errorf("GoTrue 400: %+v", e)
	}
	e = asGoTrueError(errors.New(`response status code 400: {"error":"invalid_grant","error_description":"Invalid Refresh Token"}`))
	if e.Code != "invalid_grant" || e.Msg != "Invalid Refresh Token" || !e.rejected() {
		t.Errorf("older GoTrue body: %+v", e)
	}
	for _, raw := range []string{
		`response status code 503: upstream down`,
		`response status code 429: {"msg":"slow down"}`,
		`Post "http://127.0.0.1:1/auth/v1/token?grant_type=password": dial tcp 127.0.0.1:1: connect: connection refused`,
	} {
		if e := asGoTrueError(errors.New(raw)); e.rejected() {
			t.Errorf("%q counted as a refusal: %+v", raw, e)
		}
	}
	if e := asGoTrueError(errors.New("dial tcp: connection refused")); e.Status != 0 || e.Msg != "connection refused" {
		t.Errorf("transport error: %+v", e)
	}
}

func TestRefreshMargin(t *testing.T) {
	now := time.Now()
	if m := refreshMargin(&tokenState{iat: now, exp: now.Add(time.Hour)}); m != time.Minute {
		t.Errorf("1h token: %v", m)
	}
	if m := refreshMargin(&tokenState{iat: now, exp: now.Add(2 * time.Second)}); m != 500*time.Millisecond {
		t.Errorf("2s token: %v", m)
	}
	if m := refreshMargin(&tokenState{exp: now.Add(time.Hour)}); m != time.Minute {
		t.Errorf("no iat: %v", m)
	}
}
