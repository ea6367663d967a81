// Package webtest drives a real headless Chromium for Vigil's browser tests, over the DevTools
// protocol on a pipe (--remote-debugging-pipe: JSON messages separated by NUL bytes on file
// descriptors 3 and 4), so it needs no WebSocket library and opens no debugging port. It offers
// what the tests need: pages, navigation, JavaScript evaluation (with waiting done by polling
// inside the page), file inputs, dropping files on an element, screenshots, and the page's
// console for failure reports.
//
// Debian's browser is the "chromium" package (/usr/bin/chromium); Start finds it through
// $VIGIL_CHROMIUM, then the PATH. The package is pure Go (Linux and other Unix systems: the
// browser runs in its own process group).
package webtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNoBrowser is returned by Start when no Chromium executable is found.
var ErrNoBrowser = errors.New("webtest: no Chromium found (install the Debian package \"chromium\" or set VIGIL_CHROMIUM)")

// Options configure Start.
type Options struct {
	// Path is the browser executable. Default $VIGIL_CHROMIUM, else chromium, chromium-browser
	// or google-chrome from the PATH.
	Path string
	// UserDataDir is the profile directory; a fresh one per browser. Required (t.TempDir()).
	UserDataDir string
	// Width and Height are the window size. Default 1400x900.
	Width, Height int
	// Flags are added to the defaults (headless, no sandbox, no GPU, no background networking,
	// no throttling of background pages), e.g. the fake camera flags.
	Flags []string
}

// Browser is a running Chromium. Its methods are safe for concurrent use.
type Browser struct {
	cmd    *exec.Cmd
	in     io.WriteCloser // our end of the browser's fd 3
	out    io.ReadCloser  // our end of the browser's fd 4
	stderr *tailBuffer
	width  int
	height int

	wmu     sync.Mutex
	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan reply
	pages   map[string]*Page // by session id
	readErr error
	done    chan struct{} // closed when the reader ends
	once    sync.Once
}

type reply struct {
	Result json.RawMessage
	Err    *protoError
}

type protoError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    string `json:"data"`
}

func (e *protoError) Error() string {
	return fmt.Sprintf("devtools error %d: %s %s", e.Code, e.Message, e.Data)
}

// FindChromium returns the browser executable Start would use.
func FindChromium() (string, error) {
	if p := os.Getenv("VIGIL_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoBrowser
}

// Start launches the browser and waits until it answers.
func Start(ctx context.Context, o Options) (*Browser, error) {
	if o.Path == "" {
		p, err := FindChromium()
		if err != nil {
			return nil, err
		}
		o.Path = p
	}
	if o.UserDataDir == "" {
		return nil, errors.New("webtest: Options.UserDataDir is required")
	}
	if o.Width <= 0 || o.Height <= 0 {
		o.Width, o.Height = 1400, 900
	}
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--user-data-dir=" + o.UserDataDir,
		"--no-first-run", "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-quic", "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
		"--disable-background-timer-throttling", "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows",
		"--disable-dev-shm-usage", "--password-store=basic", "--use-mock-keychain",
		fmt.Sprintf("--window-size=%d,%d", o.Width, o.Height)}
	args = append(args, o.Flags...)
	args = append(args, "about:blank")
	cmdIn, ourIn, err := os.Pipe() // the browser reads commands on fd 3
	if err != nil {
		return nil, err
	}
	ourOut, cmdOut, err := os.Pipe() // and writes answers on fd 4
	if err != nil {
		cmdIn.Close()
		ourIn.Close()
		return nil, err
	}
	b := &Browser{in: ourIn, out: ourOut, stderr: &tailBuffer{max: 64 << 10}, width: o.Width, height: o.Height,
		pending: map[int64]chan reply{}, pages: map[string]*Page{}, done: make(chan struct{})}
	b.cmd = exec.Command(o.Path, args...)
	b.cmd.ExtraFiles = []*os.File{cmdIn, cmdOut}
	// Its own process group, so that a browser that does not close is killed with its
	// renderer, GPU and zygote processes.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b.cmd.Stdout = b.stderr
	b.cmd.Stderr = b.stderr
	if err := b.cmd.Start(); err != nil {
		for _, f := range []*os.File{cmdIn, cmdOut, ourIn, ourOut} {
			f.Close()
		}
		return nil, fmt.Errorf("webtest: start %s: %w", o.Path, err)
	}
	cmdIn.Close()
	cmdOut.Close()
	go b.read()
	var v struct {
		Product string `json:"product"`
	}
	if err := b.call(ctx, "", "Browser.getVersion", nil, &v); err != nil {
		b.Close()
		return nil, fmt.Errorf("webtest: the browser does not answer: %w\n%s", err, b.Log())
	}
	return b, nil
}

// Log returns the end of the browser's own output (stdout and stderr).
func (b *Browser) Log() string { return b.stderr.String() }

// Close closes the browser (asking first, killing after 10 s) and waits for it and the reader.
func (b *Browser) Close() {
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = b.call(ctx, "", "Browser.close", nil, nil)
		cancel()
		exited := make(chan struct{})
		go func() {
			_ = b.cmd.Wait()
			close(exited)
		}()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		b.in.Close()
		b.out.Close()
		<-b.done
	})
}

// read delivers answers to callers and events to pages until the pipe closes.
func (b *Browser) read() {
	defer close(b.done)
	r := bufio.NewReaderSize(b.out, 1<<20)
	for {
		msg, err := r.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			b.readErr = fmt.Errorf("webtest: the browser's pipe closed: %w", err)
			for id, ch := range b.pending {
				ch <- reply{Err: &protoError{Message: b.readErr.Error()}}
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m struct {
			ID        int64           `json:"id"`
			Result    json.RawMessage `json:"result"`
			Error     *protoError     `json:"error"`
			Method    string          `json:"method"`
			Params    json.RawMessage `json:"params"`
			SessionID string          `json:"sessionId"`
		}
		if err := json.Unmarshal(msg[:len(msg)-1], &m); err != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.pending[m.ID]; ok {
				delete(b.pending, m.ID)
				ch <- reply{Result: m.Result, Err: m.Error}
			}
		} else if p := b.pages[m.SessionID]; p != nil {
			p.event(m.Method, m.Params)
		}
		b.mu.Unlock()
	}
}

// call sends method with params to the target of session ("" for the browser) and decodes the
// result into out (when not nil).
func (b *Browser) call(ctx context.Context, session, method string, params, out any) error {
	b.mu.Lock()
	if b.readErr != nil {
		err := b.readErr
		b.mu.Unlock()
		return err
	}
	b.nextID++
	id := b.nextID
	ch := make(chan reply, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	b.wmu.Lock()
	_, err = b.in.Write(append(data, 0))
	b.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("webtest: %s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Err != nil {
			return fmt.Errorf("%s: %w", method, r.Err)
		}
		if out != nil && len(r.Result) > 0 {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return fmt.Errorf("webtest: %s: %w", method, ctx.Err())
	}
}

// Page is a browser tab.
type Page struct {
	b       *Browser
	session string
	target  string

	mu      sync.Mutex
	console []string
}

// NewPage opens a tab with the browser's window size and attaches to it.
func (b *Browser) NewPage(ctx context.Context) (*Page, error) {
	var t struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &t); err != nil {
		return nil, err
	}
	var a struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": t.TargetID, "flatten": true}, &a); err != nil {
		return nil, err
	}
	p := &Page{b: b, session: a.SessionID, target: t.TargetID}
	b.mu.Lock()
	b.pages[p.session] = p
	b.mu.Unlock()
	for _, c := range []struct {
		method string
		params any
	}{
		{"Page.enable", nil}, {"Runtime.enable", nil}, {"Log.enable", nil},
		{"Emulation.setDeviceMetricsOverride", map[string]any{"width": b.width, "height": b.height, "deviceScaleFactor": 1, "mobile": false}},
	} {
		if err := p.Call(ctx, c.method, c.params, nil); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Call sends a DevTools method to the page and decodes its result into out (when not nil).
func (p *Page) Call(ctx context.Context, method string, params, out any) error {
	return p.b.call(ctx, p.session, method, params, out)
}

// event records console messages and uncaught exceptions. Called with the browser's lock held.
func (p *Page) event(method string, params json.RawMessage) {
	var line string
	switch method {
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(params, &e) == nil {
			var parts []string
			for _, a := range e.Args {
				if a.Value != nil {
					parts = append(parts, fmt.Sprint(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			line = "console." + e.Type + ": " + strings.Join(parts, " ")
		}
	case "Runtime.exceptionThrown":
		var e struct {
			ExceptionDetails struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		if json.Unmarshal(params, &e) == nil {
			line = "exception: " + e.ExceptionDetails.Text + " " + e.ExceptionDetails.Exception.Description
		}
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Level, Text, URL string
			} `json:"entry"`
		}
		if json.Unmarshal(params, &e) == nil {
			line = "log." + e.Entry.Level + ": " + e.Entry.Text + " " + e.Entry.URL
		}
	}
	if line == "" {
		return
	}
	p.mu.Lock()
	if len(p.console) < 1000 {
		p.console = append(p.console, line)
	}
	p.mu.Unlock()
}

// Console returns the page's console messages, uncaught exceptions and browser log entries so far.
func (p *Page) Console() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.console...)
}

// Navigate loads url and waits until its document is complete.
func (p *Page) Navigate(ctx context.Context, url string) error {
	var r struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.Call(ctx, "Page.navigate", map[string]any{"url": url}, &r); err != nil {
		return err
	}
	if r.ErrorText != "" {
		return fmt.Errorf("webtest: navigate to %s: %s", url, r.ErrorText)
	}
	return p.WaitFor(ctx, `document.readyState === "complete"`, 30*time.Second, nil)
}

// Eval evaluates a JavaScript expression in the page, awaiting it when it is a promise, and
// decodes its value (JSON) into out when out is not nil. A thrown exception is an error.
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.Call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true,
		"userGesture": true}, &r)
	if err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		return fmt.Errorf("webtest: %s: %s", e.Text, e.Exception.Description)
	}
	if out != nil && len(r.Result.Value) > 0 {
		return json.Unmarshal(r.Result.Value, out)
	}
	return nil
}

// WaitFor polls the JavaScript expression cond inside the page (every 50 ms, without round
// trips) until it is truthy, then decodes its value into out (when not nil). It fails after
// timeout with the condition in the error.
func (p *Page) WaitFor(ctx context.Context, cond string, timeout time.Duration, out any) error {
	expr := fmt.Sprintf(`new Promise((resolve, reject) => {
  const t0 = performance.now();
  const poll = () => {
    let v;
    try { v = (%s); } catch (e) { v = undefined; }
    if (v) return resolve(v);
    if (performance.now() - t0 > %d) return reject(new Error("timed out"));
    setTimeout(poll, 50);
  };
  poll();
})`, cond, timeout.Milliseconds())
	ctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	if err := p.Eval(ctx, expr, out); err != nil {
		return fmt.Errorf("webtest: waiting for %s: %w", cond, err)
	}
	return nil
}

// Click clicks the element matching the CSS selector (through its click method).
func (p *Page) Click(ctx context.Context, selector string) error {
	sel, _ := json.Marshal(selector)
	return p.Eval(ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) throw new Error("no element %s"); e.click(); return true; })()`,
		sel, strings.ReplaceAll(selector, `"`, `'`)), nil)
}

// SetInputFiles gives the file input matching selector these files, as if chosen in the file
// dialog (its change event fires).
func (p *Page) SetInputFiles(ctx context.Context, selector string, files []string) error {
	id, err := p.querySelector(ctx, selector)
	if err != nil {
		return err
	}
	return p.Call(ctx, "DOM.setFileInputFiles", map[string]any{"files": files, "nodeId": id}, nil)
}

func (p *Page) querySelector(ctx context.Context, selector string) (int64, error) {
	var doc struct {
		Root struct {
			NodeID int64 `json:"nodeId"`
		} `json:"root"`
	}
	if err := p.Call(ctx, "DOM.getDocument", map[string]any{"depth": 0}, &doc); err != nil {
		return 0, err
	}
	var q struct {
		NodeID int64 `json:"nodeId"`
	}
	if err := p.Call(ctx, "DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": selector}, &q); err != nil {
		return 0, err
	}
	if q.NodeID == 0 {
		return 0, fmt.Errorf("webtest: no element matches %q", selector)
	}
	return q.NodeID, nil
}

// DropFiles drags files from outside the browser onto the centre of the element matching
// selector and drops them there, as a user dragging them from a file manager would.
func (p *Page) DropFiles(ctx context.Context, selector string, files []string) error {
	sel, _ := json.Marshal(selector)
	var pt struct{ X, Y float64 }
	if err := p.Eval(ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%s); e.scrollIntoView({block: "center"});
const r = e.getBoundingClientRect(); return {X: r.x + r.width / 2, Y: r.y + r.height / 2}; })()`, sel), &pt); err != nil {
		return err
	}
	data := map[string]any{"items": []any{}, "files": files, "dragOperationsMask": 1}
	for _, typ := range []string{"dragEnter", "dragOver", "drop"} {
		if err := p.Call(ctx, "Input.dispatchDragEvent", map[string]any{"type": typ, "x": pt.X, "y": pt.Y, "data": data}, nil); err != nil {
			return err
		}
	}
	return nil
}

// Screenshot writes a PNG of the whole page (not only the window) to path.
func (p *Page) Screenshot(ctx context.Context, path string) error {
	var m struct {
		CSSContentSize struct {
			Width, Height float64
		} `json:"cssContentSize"`
	}
	if err := p.Call(ctx, "Page.getLayoutMetrics", nil, &m); err != nil {
		return err
	}
	w, h := max(m.CSSContentSize.Width, float64(p.b.width)), max(m.CSSContentSize.Height, float64(p.b.height))
	var r struct {
		Data string `json:"data"`
	}
	if err := p.Call(ctx, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}, &r); err != nil {
		return err
	}
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.Write(p)
	if over := t.b.Len() - t.max; over > 0 {
		t.b.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.String()
}
