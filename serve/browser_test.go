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
	"strconv"
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

// TestBrowser clicks through the page in headless Chromium (Debian's chromium and
// chromium-driver, which make setup installs) as a person would: picks a photo with the file
// input, clicks a result to see its neighbours, narrows them with the distance cutoff, goes
// back and forward, opens the duplicates view and the map, and clicks a photo on the map. It
// saves a screenshot of each step in bin/browser-test (or $SIMSEARCH_SCREENSHOT_DIR).
func TestBrowser(t *testing.T) {
	driver, err := exec.LookPath("chromedriver")
	if err != nil {
		t.Fatal("chromedriver not found: make setup installs Debian's chromium and chromium-driver")
	}
	idx := testIndex(t)
	ts := start(t, Options{Objects: filepath.Join(filepath.Dir(idx), "photos"), ThumbDir: t.TempDir()})

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

	chromiumBin := "/usr/bin/chromium"
	wd := &webDriver{t: t, base: root + "/session"}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": chromiumBin,
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

	shots := os.Getenv("SIMSEARCH_SCREENSHOT_DIR")
	if shots == "" {
		shots = filepath.Join("..", "bin", "browser-test")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &browser{wd: wd, t: t, shots: shots}

	wd.call("POST", "/url", map[string]any{"url": ts.url + "/"})
	if title := wd.call("GET", "/title", nil)["value"]; title != "simsearch" {
		t.Fatalf("page title %q", title)
	}
	// The page's style sheet applies under the server's CSP.
	if border, _ := wd.script(`return getComputedStyle(document.getElementById("drop")).borderTopStyle`).(string); border != "dashed" {
		t.Errorf("the drop zone's border is %q, want dashed: the page's style sheet is blocked", border)
	}
	b.typeInto("#k", "4")
	photo, _ := filepath.Abs(filepath.Join(images, "ladybird_brighter.jpg"))
	b.typeInto("#file", photo)

	// 1. The dropped photo's neighbours: four thumbnails that actually loaded (a broken image
	// has naturalWidth 0), its original first.
	b.waitLoaded(4)
	first := b.text("#results li")
	if !strings.Contains(first, "ladybird.jpg") || !strings.Contains(first, "1.0945") {
		t.Errorf("first result %q, want ladybird.jpg at 1.0945", first)
	}
	if status := b.text("#status"); !strings.HasPrefix(status, "4 results in") {
		t.Errorf("status line %q", status)
	}
	b.shot("1-dropped")

	// 2. More like the first result: its own photo comes first, at 0, and the URL says so.
	b.click("#results li a.more")
	b.waitFor(`return location.search.includes("id=ladybird.jpg") && document.querySelector("#results li") !== null && document.querySelector("#results li").textContent.includes("0.0000")`)
	b.waitLoaded(4)
	if q := b.text("#query-text"); !strings.Contains(q, "More like ladybird.jpg") {
		t.Errorf("query line %q", q)
	}
	b.shot("2-more-like-this")

	// 3. The cutoff is a range search on the server: with k cleared, a cutoff of 100 shows all 8
	// photos (more than the 4 asked for before); a cutoff of 1 leaves only the photo itself
	// (ladybird_brighter.jpg is not in this collection; the next nearest is further than 1).
	b.typeInto("#k", "")
	b.typeInto("#cutoff", "100")
	b.waitFor(`return location.search.includes("d=100") && !location.search.includes("k=") && document.querySelectorAll("#results li").length === 8`)
	b.typeInto("#cutoff", "1")
	b.waitFor(`return location.search.includes("d=1") && !location.search.includes("d=100") && document.querySelectorAll("#results li").length === 1`)
	if status := b.text("#status"); !strings.HasPrefix(status, "1 results within 1 in") {
		t.Errorf("status with a cutoff: %q", status)
	}
	// An answer is labelled with the cutoff it was asked with, not the one the field holds when
	// it arrives (typing goes on while a search is under way): the page's requests are held, the
	// field changed meanwhile (as typing would, before its pause starts a new search), and the
	// answer then let through.
	wd.script(`window.heldFetches = []; window.realFetch = window.fetch;
window.fetch = (...args) => new Promise((resolve, reject) => window.heldFetches.push(() => window.realFetch(...args).then(resolve, reject)));`)
	b.typeInto("#cutoff", "9")
	b.waitFor(`return window.heldFetches.length === 1`)
	wd.script(`document.getElementById("cutoff").value = "2"; window.fetch = window.realFetch; window.heldFetches.shift()();`)
	b.waitFor(`return / results within 9 in /.test(document.getElementById("status").textContent)`)
	b.typeInto("#cutoff", "1")
	b.waitFor(`return location.search.includes("d=1") && document.getElementById("status").textContent.startsWith("1 results within 1 in")`)

	// 4. Back: the dropped photo's results again; forward: the neighbours again.
	wd.call("POST", "/back", map[string]any{})
	b.waitFor(`return !location.search.includes("id=") && document.querySelectorAll("#results li").length === 4 && document.querySelector("#results li").textContent.includes("1.0945")`)
	wd.call("POST", "/forward", map[string]any{})
	b.waitFor(`return location.search.includes("id=ladybird.jpg") && document.querySelectorAll("#results li").length === 1`)

	// 5. The duplicates view: the two groups of this collection, with sizes and resolutions.
	b.click("#nav-dupes")
	b.waitFor(`return document.querySelectorAll("#groups .group").length === 2`)
	b.waitFor(`return [...document.querySelectorAll("#groups img")].filter(i => i.complete && i.naturalWidth > 0).length === 4`)
	for _, want := range []string{"coffee.png", "coffee_cmyk.jpg", "elephants_toned.jpg", "1024×576", "KB"} {
		if !strings.Contains(b.text("#groups"), want) {
			t.Errorf("duplicates view lacks %q", want)
		}
	}
	b.shot("3-duplicates")
	// The duplicates' distance is its own: submitted, it is in the URL as dd, and "more like
	// this" on one of the photos is a plain search (the default k, no cutoff), not a range
	// search within the duplicates' distance.
	b.typeInto("#dupes-d", "2")
	b.click("#dupes-controls button")
	b.waitFor(`const p = new URLSearchParams(location.search); return p.get("dd") === "2" && !p.has("d") && document.getElementById("dupes-status").textContent.includes("within 2 ")`)
	b.click("#groups .file a")
	b.waitFor(`const p = new URLSearchParams(location.search); return p.has("id") && !p.has("d") && !p.has("dd") && !p.has("k") && document.querySelectorAll("#results li").length === 8`)
	if k, cut := b.value("#k"), b.value("#cutoff"); k != "" || cut != "" {
		t.Errorf("more like a duplicate: k %q, cutoff %q; want both empty (the search's defaults)", k, cut)
	}
	if status := b.text("#status"); strings.Contains(status, "within") {
		t.Errorf("more like a duplicate: status %q, a range search", status)
	}
	b.click("#nav-dupes")
	b.waitFor(`return document.querySelectorAll("#groups .group").length === 2`)

	// 6. The map: every photo as a thumbnail, none hiding another; zoom in and back; a click
	// on a photo (a WebDriver click, at the thumbnail's centre) opens its neighbours.
	b.click("#nav-map")
	b.waitFor(`return [...document.querySelectorAll("#map a image")].length === 8`)
	before := b.text("#map-status")
	if !strings.Contains(before, "8 of the collection's 8 photos") {
		t.Errorf("map status %q", before)
	}
	b.shot("4-map")
	vb := b.viewBox()
	b.click("#zoom-in")
	if after := b.viewBox(); after == vb {
		t.Errorf("zooming in left the viewBox at %v", vb)
	}
	b.click("#zoom-reset")
	target, _ := wd.script(`return document.querySelector("#map a title").textContent`).(string)
	b.click("#map a")
	// Its neighbours: the photo itself first, at 0.
	b.waitFor(fmt.Sprintf(`return location.search.includes("id=") && !document.getElementById("search-view").hidden && document.querySelector("#results li") !== null && document.querySelector("#results li").textContent.startsWith("0.0000 " + %s)`, strconvQuote(target)))
	b.waitLoaded(8)
	b.shot("5-from-the-map")

	// 7. The keyboard: Tab from the cutoff field reaches the second result's photo (the first
	// is the photo itself), Enter opens more like it. Only the focused control is outlined, not
	// the labels around it.
	b.click("#cutoff")
	if outline, _ := wd.script(`return getComputedStyle(document.getElementById("cutoff").parentElement).outlineStyle`).(string); outline != "none" {
		t.Errorf("the cutoff's label is outlined (%s) while the field has the focus", outline)
	}
	for i := 0; ; i++ {
		if ok, _ := wd.script(`return document.activeElement.matches("#results li:nth-child(2) a.more")`).(bool); ok {
			break
		}
		if i == 15 {
			t.Fatalf("15 Tabs from the cutoff field did not reach the second result (focus on %v)", wd.script(`return document.activeElement.outerHTML.slice(0, 80)`))
		}
		b.keys("\uE004") // Tab
	}
	next, _ := wd.script(`return document.activeElement.closest("li").querySelector("img").alt`).(string)
	if next == target {
		t.Fatalf("the second result is %s, the photo itself", next)
	}
	b.shot("6-keyboard")
	b.keys("\uE007") // Enter
	b.waitFor(fmt.Sprintf(`return new URLSearchParams(location.search).get("id") === %s && document.querySelector("#results li") !== null && document.querySelector("#results li").textContent.startsWith("0.0000 " + %s)`, strconvQuote(next), strconvQuote(next)))

	// 8. A photo dropped on the drop zone (a drop event carrying the file, as a browser sends
	// it): storm_cropped.jpg is not in the collection; its original comes first. The batcher is
	// held meanwhile, and a vector query sent beside it: the two, both full scans of this small
	// index, share one pass, which the status line shows as the shared scan.
	vec, err := ts.s.Vector("rocket.jpg")
	if err != nil {
		t.Fatal(err)
	}
	release := holdBatcher(t, ts, vec)
	b.drop("#drop", filepath.Join(images, "storm_cropped.jpg"))
	other := make(chan answer, 1)
	go func() {
		js, _ := json.Marshal(map[string]any{"vector": vec})
		_, a, err := tryPost(ts.url+"/search/vector", "application/json", bytes.NewReader(js))
		if err != nil {
			t.Error(err)
		}
		other <- a
	}()
	waitFor(t, "the page's search and the vector query to queue", func() bool { return len(ts.srv.b.jobs) == 2 })
	release()
	// (An image search's status line has the inference time, a search by id's has not.)
	b.waitFor(`return !location.search.includes("id=") && document.querySelector("#query-text").textContent.includes("storm_cropped.jpg") && /inference [0-9.]+ ms, shared scan [0-9.]+ ms/.test(document.getElementById("status").textContent) && document.querySelector("#results li").textContent.includes("storm.jpg")`)
	b.waitFor(`return [...document.querySelectorAll("#results img")].every(i => i.complete && i.naturalWidth > 0)`)
	if a := <-other; a.Timings["shared_pass_queries"] != 2 {
		t.Errorf("the vector query beside the page's: timings %v, want a pass shared by 2", a.Timings)
	}

	// 9. A phone, 390 pixels wide: the page fits the width, and two fingers pinch the map in.
	wd.call("POST", "/window/rect", map[string]any{"width": 390, "height": 844})
	b.waitFor(`return window.innerWidth <= 400`)
	if w, _ := wd.script(`return document.documentElement.scrollWidth - window.innerWidth`).(float64); w > 0 {
		t.Errorf("at 390 pixels the page is %v pixels wider than the screen", w)
	}
	b.shot("7-phone-search")
	b.click("#nav-map")
	// The map drawn before is still there until the new answer replaces it (and resets the zoom).
	b.waitFor(`return !document.getElementById("map-status").textContent.includes("laying out") && [...document.querySelectorAll("#map a image")].filter(i => i.getBBox().width > 0).length === 8`)
	vb = b.viewBox()
	b.pinch("#map", 40, 160)
	if after := b.viewBox(); viewWidth(t, after) >= viewWidth(t, vb)*0.9 {
		t.Errorf("a pinch outwards took the viewBox from %q to %q: want it narrower (zoomed in)", vb, after)
	}
	b.shot("8-phone-map")
	t.Logf("screenshots in %s", shots)
}

// browser drives the page through a WebDriver session.
type browser struct {
	wd    *webDriver
	t     *testing.T
	shots string
}

func (b *browser) find(css string) string {
	b.t.Helper()
	v := b.wd.call("POST", "/element", map[string]any{"using": "css selector", "value": css})["value"].(map[string]any)
	for key, id := range v {
		b.wd.elemKey = key
		return id.(string)
	}
	b.t.Fatalf("no element %s", css)
	return ""
}

func (b *browser) click(css string) {
	b.t.Helper()
	b.wd.call("POST", "/element/"+b.find(css)+"/click", map[string]any{})
}

// typeInto replaces an input's value as typing would (a file input takes a path).
func (b *browser) typeInto(css, text string) {
	b.t.Helper()
	id := b.find(css)
	if css != "#file" {
		b.wd.call("POST", "/element/"+id+"/clear", map[string]any{})
	}
	b.wd.call("POST", "/element/"+id+"/value", map[string]any{"text": text})
}

// viewBox returns the map's viewBox attribute.
func (b *browser) viewBox() string {
	s, _ := b.wd.script(`return document.getElementById("map").getAttribute("viewBox")`).(string)
	return s
}

// viewWidth is the width of a viewBox attribute "X Y W H".
func viewWidth(t *testing.T, vb string) float64 {
	f := strings.Fields(vb)
	if len(f) != 4 {
		t.Fatalf("viewBox %q", vb)
	}
	w, err := strconv.ParseFloat(f[2], 64)
	if err != nil {
		t.Fatalf("viewBox %q: %v", vb, err)
	}
	return w
}

// keys presses and releases each key of s (WebDriver key codes: "\uE004" is Tab) on the element
// that has the focus.
func (b *browser) keys(s string) {
	b.t.Helper()
	var acts []map[string]any
	for _, k := range s {
		acts = append(acts, map[string]any{"type": "keyDown", "value": string(k)}, map[string]any{"type": "keyUp", "value": string(k)})
	}
	b.wd.call("POST", "/actions", map[string]any{"actions": []any{map[string]any{"type": "key", "id": "keyboard", "actions": acts}}})
}

// drop drops the file at path on the element css: dragenter, dragover and drop events carrying
// a DataTransfer that holds the file, as a browser sends them when a file is dragged onto it.
func (b *browser) drop(css, path string) {
	b.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.t.Fatal(err)
	}
	js := `const [css, name, b64] = arguments;
const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const dt = new DataTransfer();
dt.items.add(new File([bytes], name, { type: "image/jpeg" }));
const el = document.querySelector(css);
for (const type of ["dragenter", "dragover", "drop"]) {
  el.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
}`
	b.wd.call("POST", "/execute/sync", map[string]any{"script": js, "args": []any{css, filepath.Base(path), base64.StdEncoding.EncodeToString(data)}})
}

// pinch puts two fingers on the element css, from pixels apart on either side of its centre, and
// moves them apart to pixels to apart (an outward pinch: zoom in).
func (b *browser) pinch(css string, from, to int) {
	b.t.Helper()
	el := map[string]any{b.wd.elemKey: b.find(css)}
	finger := func(id string, sign int) map[string]any {
		return map[string]any{"type": "pointer", "id": id, "parameters": map[string]any{"pointerType": "touch"}, "actions": []any{
			map[string]any{"type": "pointerMove", "duration": 0, "origin": el, "x": sign * from / 2, "y": 0},
			map[string]any{"type": "pointerDown", "button": 0},
			map[string]any{"type": "pointerMove", "duration": 300, "origin": el, "x": sign * to / 2, "y": 0},
			map[string]any{"type": "pointerUp", "button": 0},
		}}
	}
	b.wd.call("POST", "/actions", map[string]any{"actions": []any{finger("finger1", -1), finger("finger2", 1)}})
}

// value is the value of the input css.
func (b *browser) value(css string) string {
	b.t.Helper()
	s, _ := b.wd.script(`return document.querySelector(` + strconvQuote(css) + `).value`).(string)
	return s
}

func (b *browser) text(css string) string {
	b.t.Helper()
	s, _ := b.wd.script(`const e = document.querySelector(` + strconvQuote(css) + `); return e ? e.textContent : ""`).(string)
	return s
}

// waitFor polls a condition (a script returning a boolean) until it holds, for up to 20 s.
func (b *browser) waitFor(js string) {
	b.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok, _ := b.wd.script(js).(bool); ok {
			return
		}
	}
	b.shot("failed")
	b.t.Fatalf("timed out waiting for: %s (url %v, status %q)", js, b.wd.script(`return location.href`), b.text("#status"))
}

// waitLoaded waits until n result thumbnails have loaded.
func (b *browser) waitLoaded(n int) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf(`return [...document.querySelectorAll("#results img")].filter(i => i.complete && i.naturalWidth > 0).length === %d`, n))
}

func (b *browser) shot(name string) {
	b.t.Helper()
	shot, _ := b.wd.call("GET", "/screenshot", nil)["value"].(string)
	png, err := base64.StdEncoding.DecodeString(shot)
	if err != nil || len(png) < 1000 {
		b.t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func strconvQuote(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}
