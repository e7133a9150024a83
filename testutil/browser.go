package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ChromePath finds Chromium: AICODE_TEST_CHROME, else chromium on PATH.
func ChromePath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("AICODE_TEST_CHROME"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("browser tests need Chromium (Debian: apt-get install chromium; or set AICODE_TEST_CHROME); scripts/test-env.sh installs it")
	return ""
}

// Browser is a headless Chromium tab with a fresh profile. It records
// JavaScript exceptions and console errors (CSP violations among them) so
// tests can insist on a clean page.
type Browser struct {
	Ctx context.Context

	mu     sync.Mutex
	errors []string
}

// NewBrowser starts Chromium for the test; it is closed at cleanup.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromePath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &Browser{}
	// The listener runs on the tab's read loop: it only records.
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.add(fmt.Sprintf("exception: %s (%s:%d)", msg, d.URL, d.LineNumber))
		case *runtime.EventConsoleAPICalled:
			if e.Type == "error" {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				}
				b.add("console.error: " + strings.Join(parts, " "))
			}
		case *log.EventEntryAdded:
			// Network entries are HTTP answers (a 422 for a bad form is
			// expected); tests assert statuses themselves. CSP violations,
			// script and security errors come from other sources.
			if e.Entry.Level == log.EntryLevelError && e.Entry.Source != "network" {
				b.add("log: " + e.Entry.Text + " " + e.Entry.URL)
			}
		}
	}))
	b.Ctx = ctx
	// Start the browser without a deadline (a timeout on the first call
	// would bind the browser's life to it), then enable the log domain.
	err := chromedp.Do(ctx)
	if err == nil {
		_, err = chromedp.Call(ctx, log.Enable, cdp.Empty{})
	}
	if err == nil {
		_, err = chromedp.Call(ctx, runtime.Enable, cdp.Empty{})
	}
	if err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	return b
}

func (b *Browser) add(s string) {
	b.mu.Lock()
	b.errors = append(b.errors, s)
	b.mu.Unlock()
}

// Errors returns the page errors seen so far.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// Do runs steps with a timeout, failing the test with what was being done,
// the page errors and a screenshot (kept under AICODE_TEST_ARTIFACTS).
func (b *Browser) Do(t testing.TB, what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(t, what, err)
	}
}

// Eval evaluates a JavaScript expression and returns its value.
func Eval[T any](t testing.TB, b *Browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fail(t, "evaluate "+expr, err)
	}
	return v
}

func (b *Browser) fail(t testing.TB, what string, err error) {
	t.Helper()
	sctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
	defer cancel()
	if shot, serr := chromedp.Run(sctx, chromedp.FullScreenshot(100)); serr == nil && len(shot) > 0 {
		if dir := os.Getenv("AICODE_TEST_ARTIFACTS"); dir != "" {
			_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-failure.png"), shot, 0o644)
		}
	}
	html, _ := chromedp.Run(sctx, chromedp.OuterHTML(chromedp.CSS("body")))
	if len(html) > 4000 {
		html = html[:4000] + "…"
	}
	t.Fatalf("%s: %v\npage errors: %v\nbody: %s", what, err, b.Errors(), html)
}

// Screenshot saves a full-page screenshot under AICODE_TEST_ARTIFACTS, if set.
func (b *Browser) Screenshot(t testing.TB, name string) {
	dir := os.Getenv("AICODE_TEST_ARTIFACTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
	defer cancel()
	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		_ = os.WriteFile(filepath.Join(dir, name+".png"), shot, 0o644)
	}
}

// TypeLine types text and Enter into the focused element the way a person
// does, as text input and then a real Enter key. Keystroke events as
// chromedp.SendKeys makes them reach xterm.js twice (as the key and as its
// character), so terminals need this.
func TypeLine(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if text != "" {
			if _, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text}); err != nil {
				return err
			}
		}
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
			if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{
				Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13,
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

// Click clicks the element selector matches, like chromedp.Click, and
// tries again when the node it found was swapped out of the page before
// the click (an HTMX swap or a live update re-rendering it): the error
// comes before any mouse event is sent, so nothing is clicked twice.
func Click(selector string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(selector)))
			if err == nil || !staleNode(err) {
				return err
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("click %s: %w (last: %v)", selector, ctx.Err(), err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

func staleNode(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Could not find node") || strings.Contains(s, "No node with given id") ||
		strings.Contains(s, "Node is detached") || strings.Contains(s, "Node does not have a layout object")
}
