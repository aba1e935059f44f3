package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// webDriver is just enough of the W3C WebDriver protocol to drive chromedriver.
type webDriver struct {
	t       *testing.T
	base    string // http://127.0.0.1:PORT/session/ID
	elemKey string
}

func (wd *webDriver) call(method, path string, body any) map[string]any {
	wd.t.Helper()
	var rd bytes.Buffer
	if body != nil {
		json.NewEncoder(&rd).Encode(body)
	}
	req, _ := http.NewRequest(method, wd.base+path, &rd)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		wd.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode != 200 {
		wd.t.Fatalf("webdriver %s %s: %d %v", method, path, res.StatusCode, out)
	}
	return out
}

func (wd *webDriver) script(js string) any {
	return wd.call("POST", "/execute/sync", map[string]any{"script": js, "args": []any{}})["value"]
}

// TestBrowser opens the page in headless Chromium (Debian's chromium and chromium-driver, which
// make setup installs), picks a photo with the page's file input as a person would, and waits
// for the result thumbnails to load from /objects/.
func TestBrowser(t *testing.T) {
	driver, err := exec.LookPath("chromedriver")
	if err != nil {
		t.Fatal("chromedriver not found: make setup installs Debian's chromium and chromium-driver")
	}
	idx := testIndex(t)
	ts := start(t, Options{Objects: filepath.Join(filepath.Dir(idx), "photos")})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(driver, fmt.Sprintf("--port=%d", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	root := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if res, err := http.Get(root + "/status"); err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("chromedriver did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}

	browser := "/usr/bin/chromium"
	wd := &webDriver{t: t, base: root + "/session"}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": browser,
			// Flags for a closed network and a root user, as this workplace's machines need.
			"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--user-data-dir=" + t.TempDir(), "--window-size=1200,900"},
		},
	}}}
	sess := wd.call("POST", "", caps)
	id, _ := sess["value"].(map[string]any)["sessionId"].(string)
	if id == "" {
		t.Fatalf("no session: %v", sess)
	}
	wd.base += "/" + id
	defer wd.call("DELETE", "", nil)

	wd.call("POST", "/url", map[string]any{"url": ts.url + "/"})
	if title := wd.call("GET", "/title", nil)["value"]; title != "simsearch" {
		t.Fatalf("page title %q", title)
	}
	// The page's inline style (element and attribute) applies under the server's CSP.
	if border, _ := wd.script(`return getComputedStyle(document.getElementById("drop")).borderTopStyle`).(string); border != "dashed" {
		t.Errorf("the drop zone's border is %q, want dashed: the page's <style> is blocked", border)
	}
	if w, _ := wd.script(`return document.getElementById("k").style.width`).(string); w != "4em" {
		t.Errorf("the k input's style width is %q, want 4em: its style attribute is blocked", w)
	}
	k := wd.call("POST", "/element", map[string]any{"using": "css selector", "value": "#k"})["value"].(map[string]any)
	for key, v := range k {
		wd.elemKey = key
		wd.call("POST", "/element/"+v.(string)+"/clear", map[string]any{})
		wd.call("POST", "/element/"+v.(string)+"/value", map[string]any{"text": "4"})
	}
	file := wd.call("POST", "/element", map[string]any{"using": "css selector", "value": "#file"})["value"].(map[string]any)
	photo, _ := filepath.Abs(filepath.Join(images, "ladybird_brighter.jpg"))
	wd.call("POST", "/element/"+file[wd.elemKey].(string)+"/value", map[string]any{"text": photo})

	// Wait for four thumbnails that actually loaded (a broken image has naturalWidth 0).
	var loaded float64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		loaded, _ = wd.script(`return [...document.querySelectorAll("#results img")].filter(i => i.complete && i.naturalWidth > 0).length`).(float64)
		if loaded == 4 {
			break
		}
	}
	status, _ := wd.script(`return document.getElementById("status").textContent`).(string)
	if loaded != 4 {
		t.Fatalf("%v thumbnails loaded, want 4; status %q", loaded, status)
	}
	first, _ := wd.script(`return document.querySelector("#results li").textContent`).(string)
	if !strings.Contains(first, "ladybird.jpg") || !strings.Contains(first, "1.0945") {
		t.Errorf("first result %q, want ladybird.jpg at 1.0945", first)
	}
	if !strings.HasPrefix(status, "4 results in") {
		t.Errorf("status line %q", status)
	}
	shot, _ := wd.call("GET", "/screenshot", nil)["value"].(string)
	png, err := base64.StdEncoding.DecodeString(shot)
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	out := filepath.Join(t.TempDir(), "page.png")
	if dir := os.Getenv("SIMSEARCH_SCREENSHOT_DIR"); dir != "" {
		out = filepath.Join(dir, "serve-page.png")
	}
	os.WriteFile(out, png, 0o644)
	t.Logf("screenshot: %s", out)
}
