// The page: search by a dropped image or by a photo of the collection ("more like this"), the
// duplicate groups, and the map. The URL holds the state (?id=&k=&d=, ?view=dupes&d=,
// ?view=map&id=), so back, forward, reload and links work; a dropped image cannot be put in a
// URL, so its results are kept in memory for when the user comes back to them.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

// The last dropped image and its answer (k it was asked with), to come back to.
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

function k() {
  const v = parseInt($("k").value, 10);
  return v >= 1 ? Math.min(v, 200) : 10;
}

function cutoff() {
  const v = parseFloat($("cutoff").value);
  return v >= 0 ? v : null;
}

async function renderSearch(p) {
  if (p.get("k")) $("k").value = p.get("k");
  $("cutoff").value = p.get("d") || "";
  const id = p.get("id");
  const gen = generation;
  if (id) {
    $("preview").src = thumbURL(id);
    $("preview").hidden = false;
    $("query-text").replaceChildren("More like ", strong(id), " · ", original(id));
    return searchWith(gen, () => getJSON("/search/id/" + enc(id) + "?k=" + k()));
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
  if (dropped.answer && dropped.k === k()) {
    return show(dropped.answer);
  }
  const want = k();
  return searchWith(gen, async () => {
    const body = await getJSON("/search?k=" + want, { method: "POST", body: dropped.blob });
    dropped.answer = body;
    dropped.k = want;
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

async function searchWith(gen, ask) {
  setStatus($("status"), "searching…");
  let body;
  try {
    body = await ask();
  } catch (e) {
    if (gen === generation) setStatus($("status"), "search failed: " + e.message, true);
    return;
  }
  if (gen === generation) show(body);
}

function show(body) {
  const d = cutoff();
  const shown = body.results.filter((r) => d === null || r.distance <= d);
  const t = body.timings_ms || {};
  let text = shown.length + " results";
  if (shown.length !== body.results.length) text += " within " + d + " (of " + body.results.length + ")";
  text += " in " + (t.total ?? 0).toFixed(1) + " ms";
  if (t.inference !== undefined) text += " (inference " + t.inference.toFixed(1) + " ms, scan " + (t.scan ?? 0).toFixed(1) + " ms)";
  if (body.warning) text += " · warning: " + body.warning;
  setStatus($("status"), text, !!body.warning);
  $("results").replaceChildren(...shown.map(card));
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

// k and the cutoff change the results as they are typed: the URL is rewritten, not pushed.
let typing;
function controlsChanged() {
  clearTimeout(typing);
  typing = setTimeout(() => {
    const p = params();
    p.set("k", String(k()));
    if (cutoff() === null) p.delete("d");
    else p.set("d", String(cutoff()));
    go(p, false);
  }, 250);
}

// ---- duplicates ----

function size(bytes) {
  if (!bytes) return "";
  if (bytes >= 1 << 20) return (bytes / (1 << 20)).toFixed(1) + " MB";
  return Math.max(1, Math.round(bytes / 1024)) + " KB";
}

async function renderDupes(p) {
  const gen = generation;
  const d = p.get("d");
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

const VIEW = 1000; // the SVG's user units: the layout's [0, 1] square, with a margin
let TILE = 44; // a thumbnail on the map, in user units: larger when there are few
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
  TILE = Math.max(30, Math.min(110, (0.6 * VIEW) / Math.sqrt(body.points.length || 1)));
  const m = TILE;
  const nodes = body.points.map((pt) => {
    const x = m + pt.x * (VIEW - 2 * m) - TILE / 2, y = m + pt.y * (VIEW - 2 * m) - TILE / 2;
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
  let drag = null;
  svg.addEventListener("pointerdown", (e) => {
    if (e.target.closest("a")) return;
    drag = { x: e.clientX, y: e.clientY, box: { ...box } };
    svg.setPointerCapture(e.pointerId);
  });
  svg.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const r = svg.getBoundingClientRect();
    const dx = ((e.clientX - drag.x) / r.width) * drag.box.w, dy = ((e.clientY - drag.y) / r.height) * drag.box.h;
    setBox({ ...drag.box, x: drag.box.x - dx, y: drag.box.y - dy });
  });
  svg.addEventListener("pointerup", () => { drag = null; });
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
    go(new URLSearchParams({ view: "dupes", d: $("dupes-d").value }), true);
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
