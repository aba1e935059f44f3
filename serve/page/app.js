// The page: search by a dropped image or by a photo of the collection ("more like this"), the
// duplicate groups, and the map. The URL holds the state (?id=&k=&d=, ?view=dupes&dd=,
// ?view=map&id=), so back, forward, reload and links work; a dropped image cannot be put in a
// URL, so its results are kept in memory for when the user comes back to them. The duplicates'
// distance (dd) is not the search's cutoff (d): it never becomes a search's range.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

// The last dropped image and its answer (and the query string it was asked with), to come back to.
let dropped = null;
// Each render gets a number; answers to an older one are dropped.
let generation = 0;
// The views the server answers (/capabilities); null: all. A cluster's collection has no
// duplicates or map, which read every vector.
let views = null;
const has = (view) => !views || views.includes(view);

function enc(id) {
  return id.split("/").map(encodeURIComponent).join("/");
}
const thumbURL = (id) => "/thumbs/" + enc(id);
const objectURL = (id) => "/objects/" + enc(id);

function params() {
  return new URLSearchParams(location.search);
}

// go changes the state: a new history entry (push) or the current one rewritten.
function go(p, push) {
  const url = "/" + (p.toString() ? "?" + p.toString() : "");
  if (push) {
    history.pushState(null, "", url);
  } else {
    history.replaceState(null, "", url);
  }
  render();
}

// link makes an in-page link: a real href (so it opens in a new tab, and is focusable), but
// followed without reloading.
function link(p, text) {
  const a = document.createElement("a");
  a.href = "/?" + p.toString();
  if (text) a.textContent = text;
  a.addEventListener("click", (e) => {
    if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    go(p, true);
  });
  return a;
}

// moreLike is the search for more like id, with the search's own k and cutoff if the URL has them.
function moreLike(id) {
  const p = new URLSearchParams({ id });
  const cur = params();
  for (const key of ["k", "d"]) if (cur.get(key)) p.set(key, cur.get(key));
  return p;
}

function setStatus(el, text, isError) {
  el.textContent = text;
  el.classList.toggle("error", !!isError);
}

async function getJSON(url, init) {
  const res = await fetch(url, init);
  let body;
  try {
    body = await res.json();
  } catch (e) {
    throw new Error(res.status + " " + res.statusText);
  }
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function render() {
  const p = params();
  const view = has(p.get("view")) ? p.get("view") || "search" : "search";
  generation++;
  for (const v of ["search", "dupes", "map"]) {
    $(v + "-view").hidden = v !== view;
    const nav = $("nav-" + v);
    if (v === view) nav.setAttribute("aria-current", "page");
    else nav.removeAttribute("aria-current");
  }
  if (view === "dupes") return renderDupes(p);
  if (view === "map") return renderMap(p);
  return renderSearch(p);
}

// ---- search ----

// k is the number of results asked for, or null when the field is empty: then 10, or with a
// cutoff every photo within it.
function k() {
  const v = parseInt($("k").value, 10);
  return v >= 1 ? Math.min(v, 1000) : null;
}

function cutoff() {
  const v = parseFloat($("cutoff").value);
  return v >= 0 ? v : null;
}

// asking is what a search asks for now: the fields' k and cutoff, kept with the answer so that
// its status line says what it was asked with, whatever the fields say by the time it arrives.
function asking() {
  return { k: k(), d: cutoff() };
}

// searchQuery is the query string of a search: the server finds the k nearest, within the cutoff.
function searchQuery(asked) {
  const q = new URLSearchParams();
  if (asked.k !== null) q.set("k", String(asked.k));
  if (asked.d !== null) q.set("max_distance", String(asked.d));
  return q.toString();
}

// urlK and urlCutoff are k() and cutoff() as the URL p holds them.
const urlK = (p) => (parseInt(p.get("k"), 10) >= 1 ? Math.min(parseInt(p.get("k"), 10), 1000) : null);
const urlCutoff = (p) => (parseFloat(p.get("d")) >= 0 ? parseFloat(p.get("d")) : null);

async function renderSearch(p) {
  // The fields follow the URL (back, forward, a link) unless they say the same already: a
  // field being typed in ("1." on the way to "1.5") is left alone.
  if (k() !== urlK(p)) $("k").value = p.get("k") || "";
  if (cutoff() !== urlCutoff(p)) $("cutoff").value = p.get("d") || "";
  $("k").placeholder = cutoff() === null ? "10" : "all";
  const id = p.get("id");
  const gen = generation;
  const asked = asking();
  const want = searchQuery(asked);
  if (id) {
    $("preview").src = thumbURL(id);
    $("preview").hidden = false;
    $("query-text").replaceChildren("More like ", strong(id), " · ", original(id));
    return searchWith(gen, asked, () => getJSON("/search/id/" + enc(id) + "?" + want));
  }
  if (!dropped) {
    $("preview").hidden = true;
    $("query-text").textContent = "";
    $("results").replaceChildren();
    setStatus($("status"), "");
    return;
  }
  $("preview").src = dropped.url;
  $("preview").hidden = false;
  $("query-text").replaceChildren("Photos like ", strong(dropped.name));
  if (dropped.answer && dropped.asked === want) {
    return show(dropped.answer, asked);
  }
  return searchWith(gen, asked, async () => {
    const body = await getJSON("/search?" + want, { method: "POST", body: dropped.blob });
    dropped.answer = body;
    dropped.asked = want;
    return body;
  });
}

function strong(text) {
  const s = document.createElement("strong");
  s.textContent = text;
  return s;
}

function original(id) {
  const a = document.createElement("a");
  a.href = objectURL(id);
  a.target = "_blank";
  a.rel = "noopener";
  a.textContent = "original";
  return a;
}

async function searchWith(gen, asked, ask) {
  setStatus($("status"), "searching…");
  let body;
  try {
    body = await ask();
  } catch (e) {
    if (gen === generation) setStatus($("status"), "search failed: " + e.message, true);
    return;
  }
  if (gen === generation) show(body, asked);
}

const msText = (v) => (v ?? 0).toFixed(1) + " ms";

// show shows an answer and its status line, with the k and cutoff it was asked with (asked).
function show(body, asked) {
  const t = body.timings_ms || {};
  let text = body.results.length + " results";
  if (asked.d !== null) text += " within " + asked.d;
  if (body.truncated) text += " (the nearest " + body.results.length + ": more are within it)";
  text += " in " + msText(t.total);
  if (t.inference !== undefined) {
    // A batch's inference and a full pass over the index may be shared with other requests.
    const parts = [(t.inference_images > 1 ? "shared inference " : "inference ") + msText(t.inference)];
    if (t.shared_pass === undefined || t.scan > 0) parts.push("scan " + msText(t.scan));
    if (t.shared_pass !== undefined) parts.push("shared scan " + msText(t.shared_pass));
    text += " (" + parts.join(", ") + ")";
  }
  if (body.warning) text += " · warning: " + body.warning;
  setStatus($("status"), text, !!body.warning);
  $("results").replaceChildren(...body.results.map(card));
}

function card(r) {
  const li = document.createElement("li");
  const a = link(moreLike(r.id));
  a.className = "more";
  a.title = "more like " + r.id;
  const img = document.createElement("img");
  img.src = thumbURL(r.id);
  img.alt = r.id;
  img.loading = "lazy";
  a.append(img);
  const cap = document.createElement("div");
  const d = document.createElement("span");
  d.className = "dist";
  d.textContent = r.distance.toFixed(4);
  cap.append(d, " ", r.id);
  const links = document.createElement("div");
  links.className = "links";
  links.append(original(r.id));
  if (has("map")) links.append(link(new URLSearchParams({ view: "map", id: r.id }), "map"));
  li.append(a, cap, links);
  return li;
}

function dropFile(f) {
  if (!f) return;
  if (dropped) URL.revokeObjectURL(dropped.url);
  dropped = { blob: f, name: f.name || "dropped image", url: URL.createObjectURL(f) };
  const p = new URLSearchParams();
  const cur = params();
  for (const key of ["k", "d"]) if (cur.get(key)) p.set(key, cur.get(key));
  go(p, params().toString() !== p.toString());
}

// k and the cutoff change the results as they are typed: the URL is rewritten at once (so that
// a click or a drop meanwhile carries them), the search follows a pause in the typing.
let typing;
function controlsChanged() {
  const p = params();
  if (k() === null) p.delete("k");
  else p.set("k", String(k()));
  if (cutoff() === null) p.delete("d");
  else p.set("d", String(cutoff()));
  history.replaceState(null, "", "/" + (p.toString() ? "?" + p.toString() : ""));
  clearTimeout(typing);
  typing = setTimeout(render, 250);
}

// ---- duplicates ----

function size(bytes) {
  if (!bytes) return "";
  if (bytes >= 1 << 20) return (bytes / (1 << 20)).toFixed(1) + " MB";
  return Math.max(1, Math.round(bytes / 1024)) + " KB";
}

async function renderDupes(p) {
  const gen = generation;
  const d = p.get("dd");
  if (d !== null) $("dupes-d").value = d;
  setStatus($("dupes-status"), "comparing every photo with every other…");
  $("groups").replaceChildren();
  let body;
  try {
    body = await getJSON("/dupes" + (d !== null ? "?max_distance=" + encodeURIComponent(d) : ""));
  } catch (e) {
    if (gen === generation) setStatus($("dupes-status"), "failed: " + e.message, true);
    return;
  }
  if (gen !== generation) return;
  if (d === null) $("dupes-d").value = body.max_distance;
  let text = body.total_groups + " groups of near-duplicates within " + body.max_distance;
  if (body.total_groups > body.groups.length) text += " (the largest " + body.groups.length + " shown)";
  setStatus($("dupes-status"), text + " · " + body.timings_ms.total.toFixed(0) + " ms");
  $("groups").replaceChildren(...body.groups.map(group));
}

function group(g, i) {
  const sec = document.createElement("section");
  sec.className = "group";
  const h = document.createElement("h2");
  h.textContent = "Group " + (i + 1) + " · " + g.ids.length + " photos · closest pair " + g.pairs[0].distance.toFixed(3);
  const row = document.createElement("div");
  row.className = "row";
  for (const f of g.files) {
    const div = document.createElement("div");
    div.className = "file";
    const a = link(moreLike(f.id));
    a.title = "more like " + f.id;
    const img = document.createElement("img");
    img.src = thumbURL(f.id);
    img.alt = f.id;
    img.loading = "lazy";
    a.append(img);
    const cap = document.createElement("div");
    cap.append(strong(f.id));
    const facts = document.createElement("div");
    facts.className = "facts";
    facts.textContent = [f.width ? f.width + "×" + f.height : "", size(f.bytes), f.error || ""].filter(Boolean).join(" · ");
    const links = document.createElement("div");
    links.className = "links";
    links.append(original(f.id));
    div.append(a, cap, facts, links);
    row.append(div);
  }
  const pairs = document.createElement("ul");
  pairs.className = "pairs";
  for (const pr of g.pairs) {
    const li = document.createElement("li");
    li.textContent = pr.a + " ~ " + pr.b + ": " + pr.distance.toFixed(3);
    pairs.append(li);
  }
  sec.append(h, row, pairs);
  return sec;
}

// ---- the map ----

const VIEW = 1000; // the SVG's user units: the layout's [0, 1] square
let box = { x: 0, y: 0, w: VIEW, h: VIEW };

function setBox(b) {
  const w = Math.min(Math.max(b.w, 60), VIEW * 1.5);
  const cx = b.x + b.w / 2, cy = b.y + b.h / 2;
  box = { x: cx - w / 2, y: cy - w / 2, w, h: w };
  $("map").setAttribute("viewBox", box.x + " " + box.y + " " + box.w + " " + box.h);
}

function zoom(factor, cx, cy) {
  if (cx === undefined) {
    cx = box.x + box.w / 2;
    cy = box.y + box.h / 2;
  }
  setBox({ x: cx - (cx - box.x) * factor, y: cy - (cy - box.y) * factor, w: box.w * factor, h: box.h * factor });
}

async function renderMap(p) {
  const gen = generation;
  const id = p.get("id");
  setStatus($("map-status"), "laying out…");
  let body;
  try {
    body = await getJSON("/map" + (id ? "?id=" + encodeURIComponent(id) : ""));
  } catch (e) {
    if (gen === generation) setStatus($("map-status"), "failed: " + e.message, true);
    return;
  }
  if (gen !== generation) return;
  setStatus($("map-status"), id
    ? "the " + body.points.length + " photos nearest to " + id
    : body.points.length + " of the collection's " + body.count + " photos");
  const svg = $("map");
  // The server sizes the thumbnails and places them so that they stay on the map and do not
  // hide each other: each point is a thumbnail's centre.
  const TILE = body.tile * VIEW;
  const nodes = body.points.map((pt) => {
    const x = pt.x * VIEW - TILE / 2, y = pt.y * VIEW - TILE / 2;
    const a = document.createElementNS(SVG, "a");
    a.setAttribute("href", "/?" + moreLike(pt.id).toString());
    a.addEventListener("click", (e) => {
      e.preventDefault();
      go(moreLike(pt.id), true);
    });
    const title = document.createElementNS(SVG, "title");
    title.textContent = pt.id + (pt.distance !== undefined ? " · " + pt.distance.toFixed(3) : "");
    const img = document.createElementNS(SVG, "image");
    img.setAttribute("href", thumbURL(pt.id));
    img.setAttribute("x", x);
    img.setAttribute("y", y);
    img.setAttribute("width", TILE);
    img.setAttribute("height", TILE);
    img.setAttribute("preserveAspectRatio", "xMidYMid slice");
    const frame = document.createElementNS(SVG, "rect");
    frame.setAttribute("x", x);
    frame.setAttribute("y", y);
    frame.setAttribute("width", TILE);
    frame.setAttribute("height", TILE);
    if (pt.id === id) frame.setAttribute("class", "centre");
    else frame.setAttribute("fill", "none");
    a.append(title, img, frame);
    return a;
  });
  svg.replaceChildren(...nodes);
  setBox({ x: 0, y: 0, w: VIEW, h: VIEW });
}

function svgPoint(e) {
  const r = $("map").getBoundingClientRect();
  return { x: box.x + ((e.clientX - r.left) / r.width) * box.w, y: box.y + ((e.clientY - r.top) / r.height) * box.h };
}

function mapControls() {
  const svg = $("map");
  svg.addEventListener("wheel", (e) => {
    e.preventDefault();
    const pt = svgPoint(e);
    zoom(e.deltaY > 0 ? 1.2 : 1 / 1.2, pt.x, pt.y);
  }, { passive: false });
  // One pointer drags the map (unless it is on a photo: that is a click); two pinch it, on a
  // phone, zooming about the point between them.
  const down = new Map();
  let drag = null, pinch = null;
  const start = () => {
    const [a, b] = [...down.values()];
    drag = pinch = null;
    if (b) {
      const mid = svgPoint({ clientX: (a.x + b.x) / 2, clientY: (a.y + b.y) / 2 });
      pinch = { dist: Math.hypot(a.x - b.x, a.y - b.y) || 1, box: { ...box }, mid };
    } else if (a && !a.onPhoto) {
      drag = { x: a.x, y: a.y, box: { ...box } };
    }
  };
  svg.addEventListener("pointerdown", (e) => {
    down.set(e.pointerId, { x: e.clientX, y: e.clientY, onPhoto: !!e.target.closest("a") });
    if (down.size === 2 || !e.target.closest("a")) {
      for (const id of down.keys()) svg.setPointerCapture(id);
    }
    start();
  });
  svg.addEventListener("pointermove", (e) => {
    const p = down.get(e.pointerId);
    if (!p) return;
    p.x = e.clientX;
    p.y = e.clientY;
    const r = svg.getBoundingClientRect();
    if (pinch) {
      const [a, b] = [...down.values()];
      const f = pinch.dist / (Math.hypot(a.x - b.x, a.y - b.y) || 1);
      const m = pinch.mid, o = pinch.box;
      setBox({ x: m.x - (m.x - o.x) * f, y: m.y - (m.y - o.y) * f, w: o.w * f, h: o.h * f });
    } else if (drag) {
      const dx = ((p.x - drag.x) / r.width) * drag.box.w, dy = ((p.y - drag.y) / r.height) * drag.box.h;
      setBox({ ...drag.box, x: drag.box.x - dx, y: drag.box.y - dy });
    }
  });
  const up = (e) => {
    if (!down.delete(e.pointerId)) return;
    const wasPinch = !!pinch;
    start();
    if (wasPinch) drag = null; // the finger left on the screen does not drag
  };
  svg.addEventListener("pointerup", up);
  svg.addEventListener("pointercancel", up);
  svg.addEventListener("keydown", (e) => {
    const step = box.w / 10;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (e.key === "+" || e.key === "=") zoom(1 / 1.25);
    else if (e.key === "-") zoom(1.25);
    else if (moves[e.key]) setBox({ ...box, x: box.x + moves[e.key][0], y: box.y + moves[e.key][1] });
    else return;
    e.preventDefault();
  });
  $("zoom-in").addEventListener("click", () => zoom(1 / 1.25));
  $("zoom-out").addEventListener("click", () => zoom(1.25));
  $("zoom-reset").addEventListener("click", () => setBox({ x: 0, y: 0, w: VIEW, h: VIEW }));
}

// ---- wiring ----

function init() {
  const drop = $("drop"), file = $("file");
  file.addEventListener("change", () => dropFile(file.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    dropFile(e.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      file.click();
    }
  });
  drop.tabIndex = 0;
  $("k").addEventListener("input", controlsChanged);
  $("cutoff").addEventListener("input", controlsChanged);
  $("controls").addEventListener("submit", (e) => e.preventDefault());
  $("dupes-controls").addEventListener("submit", (e) => {
    e.preventDefault();
    go(new URLSearchParams({ view: "dupes", dd: $("dupes-d").value }), true);
  });
  for (const v of ["search", "dupes", "map"]) {
    $("nav-" + v).addEventListener("click", (e) => {
      if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
      e.preventDefault();
      go(v === "search" ? new URLSearchParams() : new URLSearchParams({ view: v }), true);
    });
  }
  mapControls();
  window.addEventListener("popstate", render);
  getJSON("/capabilities").then((c) => { views = c.views; }, () => {}).finally(() => {
    for (const v of ["dupes", "map"]) $("nav-" + v).hidden = !has(v);
    render();
  });
}

init();
