package testutil

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Client is a browser-like HTTP client: it keeps cookies, does not follow
// redirects (tests assert them) and remembers the page's CSRF token.
type Client struct {
	t    testing.TB
	Base string
	HTTP *http.Client
	CSRF string
}

// NewClient returns a client without a session.
func NewClient(t testing.TB, base string) *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{t: t, Base: base, HTTP: &http.Client{
		Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

var csrfRe = regexp.MustCompile(`(?:data-csrf|name="_csrf" value)="([^"]+)"`)

// Response is a read response.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Do sends a request and reads the whole response.
func (c *Client) Do(req *http.Request) Response {
	c.t.Helper()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read %s: %v", req.URL, err)
	}
	body := string(b)
	if m := csrfRe.FindStringSubmatch(body); m != nil {
		c.CSRF = m[1]
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// Get fetches a page.
func (c *Client) Get(path string) Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.Base+path, nil)
	return c.Do(req)
}

// GetHTMX fetches a fragment as htmx would.
func (c *Client) GetHTMX(path string) Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.Base+path, nil)
	req.Header.Set("HX-Request", "true")
	return c.Do(req)
}

// Post submits a form with the remembered CSRF token (unless vals already
// has a _csrf entry). htmx requests send it as a header instead.
func (c *Client) Post(path string, vals url.Values, htmx bool) Response {
	c.t.Helper()
	if vals == nil {
		vals = url.Values{}
	}
	if _, ok := vals["_csrf"]; !ok && !htmx {
		vals.Set("_csrf", c.CSRF)
	}
	req, _ := http.NewRequest(http.MethodPost, c.Base+path, strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if htmx {
		req.Header.Set("HX-Request", "true")
		req.Header.Set("X-CSRF-Token", c.CSRF)
	}
	return c.Do(req)
}

// Setup completes first-run setup and returns the signed-in admin client.
func Setup(t testing.TB, base, username, password string) *Client {
	t.Helper()
	c := NewClient(t, base)
	if r := c.Get("/setup"); r.Status != http.StatusOK {
		t.Fatalf("GET /setup: %d", r.Status)
	}
	r := c.Post("/setup", url.Values{"username": {username}, "password": {password}, "password2": {password}}, false)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("POST /setup: %d %s", r.Status, r.Body)
	}
	c.Get("/workspaces")
	return c
}

// Login signs in and returns the client.
func Login(t testing.TB, base, username, password string) *Client {
	t.Helper()
	c := NewClient(t, base)
	c.Get("/login")
	r := c.Post("/login", url.Values{"username": {username}, "password": {password}}, false)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("login %s: %d", username, r.Status)
	}
	c.Get("/workspaces")
	return c
}

// CreateUser has the admin client add a user.
func (c *Client) CreateUser(username, password, role string) {
	c.t.Helper()
	c.Get("/admin/users")
	r := c.Post("/admin/users", url.Values{"username": {username}, "password": {password}, "role": {role}}, false)
	if r.Status != http.StatusSeeOther {
		c.t.Fatalf("create user %s: %d %s", username, r.Status, r.Body)
	}
}
