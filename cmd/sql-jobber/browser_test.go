package main

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

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/sql-jobber/sql-jobber/internal/testwait"
)

// chromiumPath is the browser the dashboard tests drive: Debian's
// chromium. Without it they skip, unless CI is set, when they fail: CI
// installs it (.ci/run).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SQLJOBBER_TEST_CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (apt-get install chromium), and CI is set")
	}
	t.Skip("chromium is not installed (apt-get install chromium); set CI to fail instead")
	return ""
}

// tab is a headless Chromium tab that a test drives.
type tab struct {
	t   *testing.T
	ctx context.Context
	// shots is where screenshots go; downloads where the browser saves files.
	shots, downloads string
	mu               sync.Mutex
	// problems are the page's uncaught exceptions and the browser's own
	// errors about it (a Content-Security-Policy violation, say).
	problems []string
}

// newTab starts Chromium (headless, no sandbox: tests run as root) and
// opens a tab; both end with the test. Screenshots are kept in shots.
func newTab(t *testing.T, shots string) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(1280, 860),
	)
	// The browser lives as long as the context of the first action run
	// on the tab: the test's, bounded so that a browser that hangs does
	// not hang the test.
	life, cancelLife := context.WithTimeout(context.Background(), 10*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	b := &tab{t: t, ctx: ctx, shots: shots, downloads: t.TempDir()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelLife()
		wg.Wait()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start the browser: %v", err)
	}
	messages := chromedp.Console(ctx)
	wg.Go(func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			// Network errors (the 401s that ask for a token) are the API
			// answering; exceptions and security errors are bugs.
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	})
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.CallBrowser(dctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: b.downloads}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	return b
}

// do runs actions, failing the test if they do not succeed within 30 s.
func (b *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *tab, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// text is the text the user sees in the elements sel selects, a line each.
func (b *tab) text(sel string) string {
	b.t.Helper()
	s, err := eval[string](b, fmt.Sprintf(`[...document.querySelectorAll(%q)].map((e) => e.innerText).join("\n")`, sel))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// waitFor polls until the JavaScript expression cond is true, failing with
// what the page shows if it does not become so within a minute.
func (b *tab) waitFor(what, cond string) {
	b.t.Helper()
	testwait.For(b.t, time.Minute, what, func() (bool, string) {
		ok, err := eval[bool](b, cond)
		if err == nil && ok {
			return true, ""
		}
		seen, _ := eval[string](b, `location.hash + "\n" + document.body.innerText.slice(0, 1500)`)
		return false, fmt.Sprintf("error %v; the page shows %q", err, seen)
	})
}

// waitText waits until the text of sel contains want.
func (b *tab) waitText(sel, want string) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("%s to show %q", sel, want),
		fmt.Sprintf(`[...document.querySelectorAll(%q)].some((e) => e.innerText.includes(%q))`, sel, want))
}

// open goes to a page of the dashboard, as a link to it would.
func (b *tab) open(hash string) {
	b.t.Helper()
	if _, err := eval[string](b, fmt.Sprintf("location.hash = %q", hash)); err != nil {
		b.t.Fatalf("open %s: %v", hash, err)
	}
}

func (b *tab) click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// screenshot saves the whole page as name.png among the test's artifacts.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot of %s: %s", name, path)
}

// download waits for the browser to have saved a file called name, and
// returns its content.
func (b *tab) download(name string) string {
	b.t.Helper()
	var content []byte
	testwait.For(b.t, time.Minute, "the browser to save "+name, func() (bool, string) {
		var err error
		content, err = os.ReadFile(filepath.Join(b.downloads, name))
		entries, _ := os.ReadDir(b.downloads)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return err == nil, fmt.Sprintf("the download folder holds %v; %s", names, b.text("#main"))
	})
	return string(content)
}

// checkProblems fails the test for every uncaught exception or browser
// error the page had.
func (b *tab) checkProblems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("the page had an error: %s", strings.TrimSpace(p))
	}
}

// artifactDir is a directory under $TMPDIR for a test's screenshots, kept
// after the test (it logs their paths).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(os.TempDir(), "sql-jobber-"+strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
