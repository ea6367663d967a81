// Vigil web UI. Plain JavaScript, no framework, no build step, nothing loaded from elsewhere.
//
// Live view: GET /v1/ui/live/{stream} is a binary stream of records (see sink/web/live.go):
// uint32 JSON length, uint32 image length, float64 server send time (Unix ms), the JSON, the
// image. A "frame" record is a result with the JPEG it was computed on; the page decodes the
// JPEG, draws it on the canvas at the next animation frame with the faces' boxes and labels, and
// measures the latency from the result's arrival on the server to the drawn overlay.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  };
  const fmt = (n, d = 1) => (typeof n === "number" && isFinite(n) ? n.toFixed(d) : "–");
  const timeOf = (s) => { const d = new Date(s); return isNaN(d) ? "" : d.toLocaleTimeString(); };
  const STREAM_RE = /^[A-Za-z0-9_-]{1,64}$/;

  // ---- API access ------------------------------------------------------------------------
  // With API keys on, open the page as /#token=KEY: the fragment never leaves the browser and
  // the key goes to every request as a bearer token (kept for this tab only).
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem("vigil-token", hash.get("token"));
    hash.delete("token");
    history.replaceState(null, "", location.pathname + location.search + (hash.toString() ? "#" + hash : ""));
  }
  const token = sessionStorage.getItem("vigil-token") || "";
  const authHeaders = (h) => Object.assign({}, h || {}, token ? { Authorization: "Bearer " + token } : {});

  function api(path, opts) {
    opts = Object.assign({}, opts || {});
    opts.headers = authHeaders(opts.headers);
    return fetch(path, opts);
  }
  // apiJSON returns {status, body} (body: parsed JSON or null); it never throws for HTTP errors.
  async function apiJSON(path, opts) {
    try {
      const r = await api(path, opts);
      let body = null;
      if (r.status !== 204) { try { body = await r.json(); } catch (e) { body = null; } }
      return { status: r.status, body };
    } catch (e) {
      return { status: 0, body: { error: { code: "network", message: e.message || String(e) } } };
    }
  }
  const errText = (res) => {
    const e = res.body && res.body.error;
    if (e) return e.code + ": " + e.message;
    return res.status ? "HTTP " + res.status : "the server could not be reached";
  };
  // imgSrc gives an <img> its source: directly, or through fetch when a token must be sent.
  function setImg(img, path) {
    if (!token) { img.src = path; return; }
    api(path).then((r) => (r.ok ? r.blob() : null)).then((b) => {
      if (b) img.src = URL.createObjectURL(b);
    }).catch(() => {});
  }

  // ---- Features: hide what this server does not have ------------------------------------
  const features = { gallery: false, classifiers: false, projects: false, camera: false, streamsAPI: false, eventStore: false, rename: false };

  async function probeFeatures() {
    const [ids, clf, proj, pub, streams, events, cfg, docs] = await Promise.all([
      apiJSON("/v1/identities"), apiJSON("/v1/classifiers"), apiJSON("/v1/classifier-projects"),
      api("/publish/vigil-probe", { method: "GET" }).then((r) => r.status).catch(() => 0),
      apiJSON("/v1/streams"), apiJSON("/v1/history/events?limit=1"), apiJSON("/v1/ui/config"),
      fetch("/openapi.json", { method: "HEAD" }).then((r) => r.status).catch(() => 0),
    ]);
    // A route that exists answers something else than 404 (405 too means "not this way").
    features.gallery = ids.status !== 404 && ids.status !== 0;
    features.classifiers = clf.status !== 404 && clf.status !== 0;
    features.projects = proj.status !== 404 && proj.status !== 0;
    features.camera = pub === 200;
    features.streamsAPI = streams.status === 200;
    features.eventStore = events.status === 200;
    features.rename = !!(cfg.body && cfg.body.rename);
    $("tab-gallery").hidden = !features.gallery;
    $("tab-classifiers").hidden = !features.classifiers;
    $("projects-col").hidden = !features.projects;
    $("camera-box").hidden = !features.camera;
    $("docs-link").hidden = docs !== 200;
    document.body.dataset.features = Object.keys(features).filter((k) => features[k]).join(" ");
    if (features.gallery) loadIdentities(ids);
    if (features.classifiers) loadClassifiers(clf);
    if (features.projects) { loadProjects(proj); loadBackbones(); }
  }

  // ---- Tabs ------------------------------------------------------------------------------
  function showTab(name) {
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
    for (const p of document.querySelectorAll(".panel")) p.classList.toggle("active", p.id === "panel-" + name);
    document.body.dataset.tab = name;
    if (name === "events") renderHistory();
    if (name === "gallery" && features.gallery) loadIdentities();
    if (name === "classifiers") { loadClassifiers(); if (features.projects) { loadProjects(); loadBackbones(); } }
  }
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));

  // ---- Clock offset to the server (for the latency measurement) --------------------------
  let clockOffset = 0; // server ms - browser ms
  const nowMS = () => performance.timeOrigin + performance.now();
  async function measureClock() {
    let best = Infinity;
    for (let i = 0; i < 5; i++) {
      const t0 = nowMS();
      const r = await apiJSON("/v1/ui/clock");
      const t1 = nowMS();
      if (r.status !== 200) return;
      if (t1 - t0 < best) { best = t1 - t0; clockOffset = r.body.server_ms - (t0 + t1) / 2; }
    }
    document.body.dataset.clockOffset = clockOffset.toFixed(2);
  }

  // ---- Streams ---------------------------------------------------------------------------
  let streams = [];      // what /v1/ui/streams (and /v1/streams) say
  let current = "";      // the stream shown
  let extraStreams = {}; // /v1/streams entries by name, when that API exists
  let streamsTick = 0;

  // normalizeStreams accepts the shapes a /v1/streams list may take: an array, or an object
  // with a "streams" or "items" array; each entry named by name, id or stream.
  function normalizeStreams(body) {
    const list = Array.isArray(body) ? body : (body && (body.streams || body.items)) || [];
    const out = {};
    for (const s of list) {
      const name = s && (s.name || s.id || s.stream);
      if (typeof name === "string" && STREAM_RE.test(name)) out[name] = s;
    }
    return out;
  }

  async function pollStreams() {
    const r = await apiJSON("/v1/ui/streams");
    if (r.status === 200) {
      $("conn").textContent = "";
      streams = r.body.streams || [];
    } else {
      $("conn").textContent = "server: " + errText(r);
    }
    if (features.streamsAPI && streamsTick++ % 3 === 0) {
      const s = await apiJSON("/v1/streams");
      if (s.status === 200) extraStreams = normalizeStreams(s.body);
    }
    renderStreams();
  }

  function renderStreams() {
    const byName = {};
    for (const s of streams) byName[s.name] = Object.assign({}, s);
    // /v1/streams (ingest's stream registry), when present: configured streams show even before
    // their first frame, and ingest's state says why a stream sends nothing (backoff, stopped...).
    for (const [name, x] of Object.entries(extraStreams)) {
      const s = byName[name] || (byName[name] = { name, state: "waiting", fps: 0, drops: 0, results: 0 });
      const st = typeof (x.state || x.status) === "string" ? x.state || x.status : "";
      s.ingest = { state: st, error: typeof x.error === "string" ? x.error : "", fps: x.stats && x.stats.fps };
      if (st && st !== "live" && s.state !== "live") s.state = st;
      if (s.ingest.error) s.error = s.ingest.error;
      if (typeof x.source === "string") s.source = x.source;
    }
    if (current && !byName[current]) byName[current] = { name: current, state: "waiting", fps: 0, drops: 0, results: 0 };
    const names = Object.keys(byName).sort();
    const ul = $("streams");
    ul.textContent = "";
    for (const name of names) {
      const s = byName[name];
      const stateClass = { live: "live", waiting: "waiting", connecting: "waiting", idle: "idle", backoff: "failed", ended: "ended",
        stopped: "ended", disabled: "ended", elsewhere: "ended" }[s.state] || (/fail|error/i.test(s.state) ? "failed" : "idle");
      const meta = [s.state, fmt(s.fps) + " fps", (s.drops || 0) + " drops"];
      if (s.ingest && s.ingest.state && s.ingest.state !== s.state) meta.push("ingest " + s.ingest.state);
      if (s.error) meta.push(s.error.length > 90 ? s.error.slice(0, 90) + "…" : s.error);
      if (s.faces) meta.push(s.faces + (s.faces === 1 ? " face" : " faces"));
      if (s.names && s.names.length) meta.push(s.names.join(", "));
      ul.append(el("li", { class: name === current ? "selected" : "", "data-stream": name, "data-state": s.state,
        title: (s.source ? s.source + "\n" : "") + (s.error || ""), onclick: () => select(name) },
        el("div", {}, el("span", { class: "dot " + stateClass }), el("span", { class: "name", text: name })),
        el("div", { class: "meta", text: meta.join(" · ") })));
    }
    $("no-streams").hidden = names.length > 0;
    // Keep the events tab's stream picker in step.
    const sel = $("ev-stream");
    const have = new Set([...sel.options].map((o) => o.value));
    for (const n of names) if (!have.has(n)) sel.append(el("option", { value: n, text: n }));
    // Show something at once: the stream named in the address (#stream=NAME), else the first
    // live one.
    if (!current) {
      const wanted = (location.hash.match(/stream=([A-Za-z0-9_-]{1,64})/) || [])[1];
      const pick = wanted || names.find((n) => byName[n].state === "live");
      if (pick) select(pick);
    }
    const cur = byName[current];
    if (cur) {
      $("view-stats").textContent = [cur.state, fmt(cur.fps) + " fps analysed", fmt(cur.frames_fps) + " fps in",
        (cur.drops || 0) + " dropped by analyzers", (cur.viewer_drops || 0) + " not sent to slow browsers",
        "pipeline latency " + fmt(cur.latency_ms, 0) + " ms"].join(" · ");
    }
  }

  function select(name) {
    if (!STREAM_RE.test(name) || name === current) return;
    current = name;
    history.replaceState(null, "", "#stream=" + name);
    $("view-title").textContent = name;
    document.body.dataset.stream = name;
    live.connect(name);
    renderStreams();
    renderLiveEvents();
  }

  // ---- The live view ---------------------------------------------------------------------
  const canvas = $("canvas");
  const ctx2d = canvas.getContext("2d");
  const lat = { samples: [], unsent: [], superseded: 0, drawn: 0 };

  const live = {
    abort: null, stream: "", pending: null, rafQueued: false, retry: 0, timer: 0,

    connect(stream) {
      if (this.abort) this.abort.abort();
      clearTimeout(this.timer);
      this.stream = stream;
      this.retry = 0;
      this.pending = null;
      $("stage-msg").textContent = "Connecting…";
      ctx2d.clearRect(0, 0, canvas.width, canvas.height);
      renderFaces([]);
      this.run(stream);
    },

    async run(stream) {
      const ac = new AbortController();
      this.abort = ac;
      try {
        const res = await api("/v1/ui/live/" + encodeURIComponent(stream), { signal: ac.signal, cache: "no-store" });
        if (res.status !== 200) {
          let msg = "HTTP " + res.status;
          try { msg = (await res.json()).error.message; } catch (e) { /* not JSON */ }
          throw new Error(msg);
        }
        this.retry = 0;
        $("stage-msg").textContent = "Waiting for analysed frames…";
        await this.read(res.body.getReader(), stream);
        throw new Error("the server ended the stream");
      } catch (e) {
        if (ac.signal.aborted || stream !== this.stream) return;
        this.retry = Math.min(this.retry + 1, 5);
        $("stage-msg").textContent = "Reconnecting (" + (e.message || e) + ")…";
        this.timer = setTimeout(() => { if (stream === this.stream) this.run(stream); }, 500 * this.retry);
      }
    },

    // read parses records from the byte stream: a buffer grows until a whole record is in it.
    async read(reader, stream) {
      let buf = new Uint8Array(1 << 16), len = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        if (len + value.length > buf.length) {
          const nb = new Uint8Array(Math.max(buf.length * 2, len + value.length));
          nb.set(buf.subarray(0, len));
          buf = nb;
        }
        buf.set(value, len);
        len += value.length;
        let off = 0;
        while (len - off >= 16) {
          const dv = new DataView(buf.buffer, buf.byteOffset + off, 16);
          const jl = dv.getUint32(0), il = dv.getUint32(4), sendMS = dv.getFloat64(8);
          if (len - off < 16 + jl + il) break;
          const arrive = performance.now();
          const msg = JSON.parse(new TextDecoder().decode(buf.subarray(off + 16, off + 16 + jl)));
          const img = il ? buf.slice(off + 16 + jl, off + 16 + jl + il) : null;
          off += 16 + jl + il;
          if (stream === this.stream) this.onRecord(msg, img, sendMS, arrive);
        }
        if (off > 0) { buf.copyWithin(0, off, len); len -= off; }
      }
    },

    onRecord(msg, img, sendMS, arrive) {
      if (msg.type === "hello" || msg.type === "stats") {
        const i = msg.info || {};
        const idx = streams.findIndex((s) => s.name === i.name);
        if (idx >= 0) streams[idx] = i; else if (i.name) streams.push(i);
        if (msg.type === "stats") document.body.dataset.viewerDropped = msg.dropped;
        renderStreams();
        return;
      }
      if (msg.type !== "frame" || !img) return;
      const type = msg.encoding === "png" ? "image/png" : "image/jpeg";
      createImageBitmap(new Blob([img], { type })).then((bmp) => {
        if (msg.stream !== this.stream) { bmp.close(); return; } // the user switched streams meanwhile
        if (this.pending) { this.pending.bmp.close(); lat.superseded++; }
        this.pending = { bmp, msg, sendMS, arrive };
        if (!this.rafQueued) { this.rafQueued = true; requestAnimationFrame(() => this.draw()); }
      }).catch(() => { /* an undecodable image: skip it */ });
    },

    draw() {
      this.rafQueued = false;
      const p = this.pending;
      this.pending = null;
      if (!p) return;
      const labels = drawFrame(p.bmp, p.msg.result);
      p.bmp.close();
      const drawn = performance.now();
      const s = { seq: p.msg.seq, total_ms: nowMS() + clockOffset - p.msg.recv_ms, server_ms: p.sendMS - p.msg.recv_ms, client_ms: drawn - p.arrive };
      lat.samples.push(s);
      if (lat.samples.length > 300) lat.samples.shift();
      lat.unsent.push(s);
      if (lat.unsent.length > 500) lat.unsent.shift();
      lat.drawn++;
      canvas.dataset.seq = p.msg.seq;
      canvas.dataset.drawn = lat.drawn;
      canvas.dataset.labels = JSON.stringify(labels);
      canvas.dataset.stream = p.msg.stream;
      $("stage-msg").textContent = "";
      renderFaces(p.msg.result.faces || [], p.msg.result);
      renderLatency();
    },
  };

  // unknownLabel names a face without identity: the unknown person its track matched (People
  // tab), or just "unknown".
  function unknownLabel(uid) { return uid ? "unknown " + uid : "unknown"; }

  // faceLabels gives a face's title (identity, "unknown", or "too small" for a face below the
  // analyzer's minimum for recognition, and its track id), its attribute line and the lines of the
  // classifiers that looked at it.
  function faceLabels(f, classes) {
    const id = f.identity && f.identity.name;
    const track = f.track_id ? "#" + shortTrack(f.track_id) : "";
    const small = !id && f.too_small;
    const title = (id ? id + " " + fmt(f.identity.similarity, 2) : small ? "too small" : unknownLabel(f.unknown_id)) + (track ? "  " + track : "");
    const attrs = [];
    if (typeof f.age === "number") attrs.push(Math.round(f.age) + "y");
    if (f.gender) attrs.push(f.gender.label);
    if (f.emotion) attrs.push(f.emotion.label);
    if (f.liveness) attrs.push((f.liveness.real ? "live " : "SPOOF? ") + fmt(f.liveness.score, 2));
    return { title, attrs: attrs.join(" · "), classes: (classes || []).map(classText), known: !!id, small, fake: !!(f.liveness && !f.liveness.real) };
  }
  const shortTrack = (id) => { const i = id.lastIndexOf("-"); return i >= 0 ? id.slice(i + 1) : id; };
  const classText = (c) => c.model + ": " + c.label + " " + fmt(c.score, 2);

  // classesByTarget groups a result's classifications: faces[i] for target "face:i", and frame
  // for the whole frame and fixed regions.
  function classesByTarget(res) {
    const out = { faces: [], frame: [] };
    for (const c of res.classifications || []) {
      const m = /^face:(\d+)$/.exec(c.target || "");
      if (m) (out.faces[+m[1]] = out.faces[+m[1]] || []).push(c);
      else out.frame.push(c);
    }
    return out;
  }

  // overlap is the area two rectangles {x, y, w, h} share.
  const overlap = (a, b) => Math.max(0, Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x)) *
    Math.max(0, Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y));

  // placeLabel picks where a w x h label block of a face box goes: above, below, right or left of
  // the box, inside its top, or stacked above or below a block already placed, kept inside the
  // cw x ch canvas; the spot overlapping the placed blocks least (then other faces' boxes, then
  // nearest the box, covering the least of it) wins. Adjacent faces' labels so never cover each other while a
  // free spot exists.
  function placeLabel(box, w, h, placed, others, cw, ch) {
    const g = 2;
    const cands = [[box.x, box.y - h - g], [box.x, box.y + box.h + g], [box.x + box.w + g, box.y], [box.x - w - g, box.y], [box.x, box.y]];
    for (const p of placed) cands.push([box.x, p.y - h - g], [box.x, p.y + p.h + g], [p.x + p.w + g, p.y], [p.x - w - g, p.y]);
    let best = null, bestCost = Infinity;
    for (const [k, [cx, cy]] of cands.entries()) {
      const r = { x: Math.min(Math.max(0, cx), Math.max(0, cw - w)), y: Math.min(Math.max(0, cy), Math.max(0, ch - h)), w, h };
      let cost = 0;
      for (const p of placed) cost += 1e6 * overlap(r, p);
      for (const o of others) cost += 10 * overlap(r, o);
      const dx = Math.max(0, r.x - (box.x + box.w), box.x - (r.x + w)), dy = Math.max(0, r.y - (box.y + box.h), box.y - (r.y + h));
      cost += 3 * (dx + dy) + Math.abs(r.x - box.x) + overlap(r, box) / 8 + k / 100;
      if (cost < bestCost) { best = r; bestCost = cost; }
    }
    return best;
  }

  // drawFrame draws the image, every face's box and a label block per face (title, attributes,
  // classifications) laid out so that blocks do not overlap, and the frame's own classifications
  // top left; it returns what it wrote and sets canvas.dataset.blocks to the blocks' rectangles.
  function drawFrame(bmp, res) {
    const rect = canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const fw = res.width || bmp.width, fh = res.height || bmp.height;
    // Keep the frame's aspect ratio inside the stage.
    const stage = $("stage");
    stage.style.aspectRatio = fw + " / " + fh;
    const cw = Math.max(1, Math.round((rect.width || fw) * dpr)), ch = Math.max(1, Math.round(cw * fh / fw));
    if (canvas.width !== cw || canvas.height !== ch) { canvas.width = cw; canvas.height = ch; }
    const s = cw / fw;
    ctx2d.drawImage(bmp, 0, 0, cw, ch);
    const fontPx = Math.round(13 * dpr);
    ctx2d.font = "600 " + fontPx + "px system-ui, sans-serif";
    ctx2d.textBaseline = "top";
    const pad = 3 * dpr, lh = fontPx + 2 * pad;
    const faces = res.faces || [];
    const byTarget = classesByTarget(res);
    const boxes = faces.map((f) => ({ x: f.box.x1 * s, y: f.box.y1 * s, w: (f.box.x2 - f.box.x1) * s, h: (f.box.y2 - f.box.y1) * s }));
    const labels = [], placed = [];
    // The frame's classifications first, top left: faces' labels keep clear of them.
    if (byTarget.frame.length) {
      const lines = byTarget.frame.map(classText);
      const w = Math.max(...lines.map((l) => ctx2d.measureText(l).width)) + 2 * pad;
      const r = { x: 4 * dpr, y: 4 * dpr, w, h: lines.length * lh };
      ctx2d.fillStyle = "rgba(20,40,90,.8)";
      ctx2d.fillRect(r.x, r.y, r.w, r.h);
      ctx2d.fillStyle = "#fff";
      lines.forEach((l, i) => ctx2d.fillText(l, r.x + pad, r.y + i * lh + pad));
      placed.push(r);
      labels.push("frame | " + lines.join(", "));
    }
    faces.forEach((f, i) => {
      const b = boxes[i];
      const L = faceLabels(f, byTarget.faces[i]);
      const color = L.fake ? "#f85149" : L.known ? "#3fb950" : L.small ? "#8b949e" : "#f0a020";
      ctx2d.lineWidth = Math.max(2, 2 * dpr);
      ctx2d.strokeStyle = color;
      ctx2d.strokeRect(b.x, b.y, b.w, b.h);
      if (f.landmarks) {
        ctx2d.fillStyle = "rgba(79,163,255,.9)";
        for (const p of f.landmarks) { ctx2d.beginPath(); ctx2d.arc(p.x * s, p.y * s, 2 * dpr, 0, 2 * Math.PI); ctx2d.fill(); }
      }
    });
    // Labels in reading order (top to bottom, left to right), so a face's nearest free spot is
    // not taken by a face further down; labels[] keeps the faces' order.
    const order = faces.map((_, i) => i).sort((a, b) => boxes[a].y - boxes[b].y || boxes[a].x - boxes[b].x);
    const faceLines = [];
    for (const i of order) {
      const f = faces[i];
      const b = boxes[i];
      const L = faceLabels(f, byTarget.faces[i]);
      const color = L.fake ? "#f85149" : L.known ? "#3fb950" : L.small ? "#8b949e" : "#f0a020";
      const lines = [L.title].concat(L.attrs ? [L.attrs] : [], L.classes);
      const w = Math.max(...lines.map((l) => ctx2d.measureText(l).width)) + 2 * pad;
      const r = placeLabel(b, w, lines.length * lh, placed, boxes.filter((_, j) => j !== i), cw, ch);
      placed.push(r);
      ctx2d.fillStyle = color;
      ctx2d.fillRect(r.x, r.y, r.w, lh);
      ctx2d.fillStyle = "#0b0d10";
      ctx2d.fillText(L.title, r.x + pad, r.y + pad);
      if (lines.length > 1) {
        ctx2d.fillStyle = "rgba(0,0,0,.7)";
        ctx2d.fillRect(r.x, r.y + lh, r.w, (lines.length - 1) * lh);
        ctx2d.fillStyle = "#fff";
        lines.slice(1).forEach((l, k) => ctx2d.fillText(l, r.x + pad, r.y + (k + 1) * lh + pad));
      }
      faceLines[i] = L.title + (L.attrs ? " | " + L.attrs : "") + (L.classes.length ? " | " + L.classes.join(", ") : "");
    }
    labels.push(...faceLines);
    canvas.dataset.blocks = JSON.stringify(placed.map((r) => [r.x, r.y, r.w, r.h].map(Math.round)));
    renderClasses(byTarget.frame);
    return labels;
  }

  // renderClasses lists the frame's own classifications under the canvas (face ones are in the
  // faces table).
  function renderClasses(list) {
    const ul = $("frame-classes");
    ul.textContent = "";
    for (const c of list) ul.append(el("li", { "data-model": c.model, text: classText(c) + (c.target && c.target !== "frame" ? " (" + c.target + ")" : "") }));
    ul.hidden = !list.length;
  }

  function renderFaces(faces, res) {
    const tb = $("faces").tBodies[0];
    tb.textContent = "";
    const byTarget = classesByTarget(res || {});
    faces.forEach((f, i) => {
      const id = f.identity && f.identity.name;
      const who = id ? id + " (" + fmt(f.identity.similarity, 2) + ")" : f.too_small ? "too small" : unknownLabel(f.unknown_id);
      tb.append(el("tr", { "data-track": f.track_id || "", "data-identity": id || "" },
        el("td", {}, trackLink(f.track_id)),
        el("td", { class: id ? "known" : f.too_small ? "small" : "unknown", text: who,
          title: !id && f.too_small ? "The face is below the analyzer's minimum size for recognition: no identity or liveness is guessed." : "" }),
        el("td", { text: typeof f.age === "number" ? Math.round(f.age) : "–" }),
        el("td", { text: f.gender ? f.gender.label + " " + fmt(f.gender.score, 2) : "–" }),
        el("td", { text: f.emotion ? f.emotion.label + " " + fmt(f.emotion.scores && f.emotion.scores[f.emotion.label], 2) : "–" }),
        el("td", { class: f.liveness && !f.liveness.real ? "fake" : "", text: f.liveness ? (f.liveness.real ? "live " : "spoof? ") + fmt(f.liveness.score, 2) :
          f.too_small ? "too small" : "–" }),
        el("td", { class: "classes", text: (byTarget.faces[i] || []).map(classText).join(", ") || "–" }),
        el("td", { text: fmt(f.score, 2) })));
    });
  }

  function pct(v, p) {
    if (!v.length) return NaN;
    const s = v.slice().sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  }
  function renderLatency() {
    const tot = lat.samples.map((s) => s.total_ms), cli = lat.samples.map((s) => s.client_ms), srv = lat.samples.map((s) => s.server_ms);
    const e = $("latency");
    e.dataset.count = lat.drawn;
    e.dataset.p50 = fmt(pct(tot, 0.5), 2);
    e.dataset.p95 = fmt(pct(tot, 0.95), 2);
    e.dataset.last = fmt(tot[tot.length - 1], 2);
    e.dataset.superseded = lat.superseded;
    $("lat-text").textContent = "result on server → overlay drawn p50 " + fmt(pct(tot, 0.5)) + " ms, p95 " + fmt(pct(tot, 0.95)) +
      " ms (server queue p50 " + fmt(pct(srv, 0.5)) + " ms, decode + draw p50 " + fmt(pct(cli, 0.5)) + " ms) over " + tot.length +
      " frames; " + lat.superseded + " superseded before drawing";
  }
  async function reportLatency() {
    if (!lat.unsent.length) return;
    const samples = lat.unsent.splice(0, 500);
    const superseded = lat.superseded - (lat.reportedSuperseded || 0);
    lat.reportedSuperseded = lat.superseded;
    await apiJSON("/v1/ui/latency", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ stream: live.stream, samples, superseded }) });
  }

  // ---- Events ----------------------------------------------------------------------------
  let events = [];   // recent events from /v1/ui/events, oldest first
  let lastEventID = 0;

  async function pollEvents() {
    const r = await apiJSON("/v1/ui/events?limit=500&after=" + lastEventID);
    if (r.status !== 200) return;
    if (r.body.last_id < lastEventID) { events = []; lastEventID = 0; return; } // the server restarted
    const fresh = r.body.events || [];
    if (!fresh.length) return;
    events = events.concat(fresh).slice(-1000);
    lastEventID = r.body.last_id;
    renderLiveEvents();
    renderRecognitions();
    // A fresh event shows in the history too, unless older pages were loaded there.
    if (document.body.dataset.tab === "events" && $("ev-table").tBodies[0].rows.length <= 200) renderHistory();
  }

  const kindName = (k) => (k || "").replace("face.", "");
  // snapshotOf returns the picture of an event's face: the UI's snapshot, the event store's,
  // or a crop of the referenced frame while the server still holds it.
  function snapshotOf(e) {
    if (e.snapshot) return e.snapshot;
    if (e.snapshot_url) return e.snapshot_url;
    const c = e.crop;
    if (c && c.box && c.seq) {
      const b = c.box;
      return "/v1/ui/crops/" + encodeURIComponent(c.stream) + "/" + c.seq + "?box=" + [b.x1, b.y1, b.x2, b.y2].map((v) => v.toFixed(1)).join(",") +
        (c.width && c.height ? "&w=" + c.width + "&h=" + c.height : "") + "&size=160&pad=0.25";
    }
    return "";
  }
  function eventItem(e, big) {
    const img = el("img", { alt: "", class: "snap", loading: "lazy" });
    const src = snapshotOf(e);
    if (src) setImg(img, src);
    img.addEventListener("error", () => { img.style.visibility = "hidden"; });
    const who = e.identity && e.identity.name ? e.identity.name : (e.kind === "face.recognized" ? "?" : unknownLabel(e.unknown_id));
    return el("li", { "data-kind": e.kind, "data-identity": (e.identity && e.identity.name) || "", "data-track": e.track_id,
      class: "clickable", title: "open this event", onclick: () => openEvent(e) },
      img,
      el("div", { class: "what" },
        el("div", {}, el("span", { class: "kind " + (e.kind || "").replace(".", "-"), text: kindName(e.kind) }), " ",
          el("strong", { text: who })),
        el("div", { class: "muted", text: (big ? e.stream + " · " : "") + "#" + shortTrack(e.track_id || "") + " · " + timeOf(e.at || e.received) +
          (e.reason ? " · " + e.reason : "") })));
  }
  function renderLiveEvents() {
    const list = events.filter((e) => e.stream === current).slice(-30).reverse();
    const ol = $("live-events");
    ol.textContent = "";
    for (const e of list) ol.append(eventItem(e, false));
    $("live-events-empty").hidden = list.length > 0;
  }
  function renderRecognitions() {
    const list = events.filter((e) => e.kind === "face.recognized").slice(-20).reverse();
    const ul = $("recognitions");
    ul.textContent = "";
    for (const e of list) ul.append(eventItem(e, true));
    $("recognitions-empty").hidden = list.length > 0;
  }

  // The history: from the event store (sink/eventstore: GET /v1/history/events, newest first,
  // paged with ?before=) when the server has one, else the latest events this server holds.
  let historyNext = 0;
  function historyQuery(before) {
    const q = new URLSearchParams({ limit: "200" });
    const stream = $("ev-stream").value, kind = $("ev-kind").value;
    if (stream) q.set("stream", stream);
    if (kind) q.set("kind", kind);
    if (trackFilter) q.set("track_id", trackFilter);
    if (before) q.set("before", String(before));
    return q;
  }
  async function renderHistory(more) {
    const tb = $("ev-table").tBodies[0];
    let list = null, source = "";
    if (features.eventStore) {
      const r = await apiJSON("/v1/history/events?" + historyQuery(more === true ? historyNext : 0));
      if (r.status === 200) {
        list = (r.body.events || []).map((e) => Object.assign({}, e, { snapshot_url: e.has_snapshot ? "/v1/history/events/" + e.id + "/snapshot" : "" }));
        historyNext = r.body.next_before || 0;
        source = "from the event store";
      } else {
        source = "event store: " + errText(r) + "; ";
      }
    }
    if (!list) {
      more = false;
      historyNext = 0;
      const q = historyQuery(0);
      q.set("limit", "1000");
      const r = await apiJSON("/v1/ui/events?" + q);
      list = r.status === 200 ? r.body.events.slice().reverse().filter((e) => !trackFilter || e.track_id === trackFilter) : [];
      source += "live feed: the latest events this server holds";
    }
    $("ev-source").textContent = source;
    $("ev-more").hidden = !historyNext;
    if (more !== true) tb.textContent = "";
    for (const e of list) {
      const img = el("img", { alt: "", class: "snap", loading: "lazy" });
      const src = snapshotOf(e);
      if (src) setImg(img, src);
      img.addEventListener("error", () => { img.style.visibility = "hidden"; });
      const dur = (Date.parse(e.last_seen) - Date.parse(e.first_seen)) / 1000;
      tb.append(el("tr", { "data-kind": e.kind, "data-identity": (e.identity && e.identity.name) || "", "data-track": e.track_id,
        class: "clickable", title: "open this event", onclick: () => openEvent(e) },
        el("td", {}, img), el("td", { text: new Date(e.at).toLocaleString() }), el("td", { text: e.stream }),
        el("td", {}, el("span", { class: "kind " + e.kind.replace(".", "-"), text: kindName(e.kind) }), e.reason ? " (" + e.reason + ")" : ""),
        el("td", {}, trackLink(e.track_id)),
        el("td", { class: e.identity ? "known" : "unknown", text: e.identity ? e.identity.name + " " + fmt(e.identity.similarity, 2) : "–" }),
        el("td", { text: e.frames }), el("td", { text: isFinite(dur) ? fmt(dur) + " s" : "" })));
    }
    $("ev-empty").hidden = tb.rows.length > 0;
    document.body.dataset.history = features.eventStore && source.startsWith("from") ? "store" : "live";
  }
  $("ev-more").addEventListener("click", () => renderHistory(true));

  // Track ids link to the track's events: the Events tab filtered to the track.
  let trackFilter = "";
  function showTrack(id) {
    trackFilter = id || "";
    $("ev-track").hidden = !trackFilter;
    $("ev-track-id").textContent = trackFilter;
    document.body.dataset.track = trackFilter;
    showTab("events");
  }
  function trackLink(id) {
    if (!id) return el("span", { class: "muted", text: "–" });
    return el("a", { href: "#", class: "track", text: id, title: "every event of track " + id, "data-track-link": id,
      onclick: (ev) => { ev.preventDefault(); ev.stopPropagation(); showTrack(id); } });
  }
  $("ev-track-clear").addEventListener("click", () => showTrack(""));

  // openEvent shows an event in the dialog: its snapshot, kind and identity, track, stream, time.
  function openEvent(e) {
    const d = $("event-dialog");
    const who = e.identity && e.identity.name ? e.identity.name + " (" + fmt(e.identity.similarity, 2) + ")" : unknownLabel(e.unknown_id);
    $("evd-title").textContent = kindName(e.kind) + ": " + who;
    const img = $("evd-snap");
    let src = snapshotOf(e);
    if (src.includes("&size=")) src = src.replace(/&size=\d+/, "&size=320");
    img.hidden = !src;
    img.style.visibility = "";
    if (src) setImg(img, src);
    const dl = $("evd-fields");
    dl.textContent = "";
    const dur = (Date.parse(e.last_seen) - Date.parse(e.first_seen)) / 1000;
    const rows = [["Event", kindName(e.kind) + (e.reason ? " (" + e.reason + ")" : "")], ["Identity", who],
      ["Track", trackLink(e.track_id)], ["Stream", e.stream], ["Time", e.at || e.received ? new Date(e.at || e.received).toLocaleString() : "–"],
      ["Frame", e.seq ? "#" + e.seq : "–"], ["Seen", isFinite(dur) ? fmt(dur) + " s, " + (e.frames || 0) + " frames" : "–"]];
    for (const [k, v] of rows) dl.append(el("dt", { text: k }), el("dd", { "data-field": k.toLowerCase() }, v));
    $("evd-watch").onclick = () => { d.close(); showTab("live"); select(e.stream); };
    $("evd-track").onclick = () => { d.close(); showTrack(e.track_id); };
    d.dataset.event = e.id || "";
    if (!d.open) d.showModal();
  }
  $("event-dialog").addEventListener("close", () => { $("evd-snap").removeAttribute("src"); });
  $("ev-stream").addEventListener("change", () => renderHistory());
  $("ev-kind").addEventListener("change", () => renderHistory());

  // ---- Gallery ---------------------------------------------------------------------------
  let identities = [];
  const photos = []; // {file, url, state: "new"|"busy"|"ok"|"err", msg, li}

  let identitiesReq = 0; // only the latest request's answer is shown
  async function loadIdentities(pre) {
    const n = ++identitiesReq;
    const r = pre || (await apiJSON("/v1/identities"));
    if (n !== identitiesReq) return;
    if (r.status !== 200) { $("gallery-msg").textContent = "The gallery is not available: " + errText(r); return; }
    identities = r.body.identities || [];
    renderIdentities();
  }
  // renaming is the identity being renamed ({id, value}); armed the one whose delete button was
  // clicked once ({id, timer}). A refresh of the list keeps both.
  let renaming = null, armed = null;
  function renderIdentities() {
    const ul = $("identities");
    ul.textContent = "";
    for (const id of identities) {
      const li = el("li", { "data-id": id.id, "data-name": id.name });
      ul.append(li);
      if (renaming && renaming.id === id.id) { renameRow(li, id); continue; }
      const name = el("span", { class: "name", text: id.name });
      const info = el("span", { class: "muted", text: id.photos + (id.photos === 1 ? " photo" : " photos") });
      const actions = el("span", { class: "actions" });
      if (features.rename) actions.append(el("button", { type: "button", class: "rename", text: "Rename", onclick: () => {
        renaming = { id: id.id, value: id.name };
        renderIdentities();
        const input = ul.querySelector(".rename-input");
        if (input) { input.focus(); input.select(); }
      } }));
      const del = el("button", { type: "button", class: "danger delete", text: armed && armed.id === id.id ? "Really delete?" : "Delete" });
      del.addEventListener("click", async () => {
        if (!armed || armed.id !== id.id) { // a second click within 3 s confirms (kept across refreshes)
          if (armed) clearTimeout(armed.timer);
          del.textContent = "Really delete?";
          armed = { id: id.id, timer: setTimeout(() => { armed = null; renderIdentities(); }, 3000) };
          return;
        }
        clearTimeout(armed.timer);
        armed = null;
        del.disabled = true;
        const r = await apiJSON("/v1/identities/" + encodeURIComponent(id.id), { method: "DELETE" });
        if (r.status !== 204) $("gallery-msg").textContent = "Delete failed: " + errText(r);
        loadIdentities();
      });
      actions.append(del);
      li.append(name, info, actions);
    }
    if (renaming && !identities.some((i) => i.id === renaming.id)) renaming = null; // deleted meanwhile
    const msg = $("gallery-msg");
    if (!identities.length) msg.textContent = "Nobody is enrolled yet.";
    else if (/^(Nobody|The gallery)/.test(msg.textContent)) msg.textContent = "";
  }
  function renameRow(li, id) {
    const input = el("input", { value: renaming.value, maxLength: 128, class: "rename-input" });
    input.addEventListener("input", () => { renaming.value = input.value; });
    const save = el("button", { type: "button", text: "Save", class: "rename-save" });
    const cancel = el("button", { type: "button", text: "Cancel", onclick: () => { renaming = null; renderIdentities(); } });
    li.append(input, save, cancel);
    const go = async () => {
      save.disabled = true;
      const r = await apiJSON("/v1/ui/identities/" + encodeURIComponent(id.id) + "/rename", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: input.value }) });
      if (r.status !== 200) { $("gallery-msg").textContent = "Rename failed: " + errText(r); save.disabled = false; return; }
      renaming = null;
      $("gallery-msg").textContent = "Renamed to " + r.body.name + ".";
      loadIdentities();
    };
    save.addEventListener("click", go);
    input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); go(); } if (ev.key === "Escape") cancel.click(); });
  }

  function addPhotos(files) {
    for (const f of files) {
      if (!/^image\/(jpeg|png)$/.test(f.type)) {
        addPhotoRow({ file: f, url: "", state: "err", msg: "not a JPEG or PNG image" });
        continue;
      }
      addPhotoRow({ file: f, url: URL.createObjectURL(f), state: "new", msg: "ready" });
    }
    $("enroll-status").textContent = "";
  }
  function addPhotoRow(p) {
    photos.push(p);
    p.li = el("li", { "data-file": p.file.name });
    renderPhoto(p);
    $("enroll-photos").append(p.li);
  }
  function renderPhoto(p) {
    p.li.className = p.state;
    p.li.dataset.state = p.state;
    p.li.textContent = "";
    p.li.append(p.url ? el("img", { src: p.url, alt: "" }) : el("span", { class: "snap" }),
      el("div", {}, el("div", { class: "file", text: p.file.name }), el("div", { class: "msg", text: p.msg })),
      el("button", { type: "button", text: "×", title: "remove", onclick: () => {
        photos.splice(photos.indexOf(p), 1);
        if (p.url) URL.revokeObjectURL(p.url);
        p.li.remove();
      } }));
  }
  // chosenFace says which face of a photo the face API enrolled (EnrolledFace).
  function chosenFace(f) {
    if (!f || f.chosen === "only") return "one face found";
    const box = " at " + [f.box.x1, f.box.y1, f.box.x2, f.box.y2].map(Math.round).join(",");
    if (f.chosen === "box") return "the face in the box" + box + " (" + f.faces_found + " faces found)";
    return "the main face of " + f.faces_found + " found" + box + " (the others are much smaller or less certain)";
  }
  // explain turns the face API's enrollment errors into a line for the photo.
  function explain(r) {
    const e = r.body && r.body.error;
    if (!e) return errText(r);
    const msg = e.message.replace(/^photo \d+ of \d+: /, "").replace(/ Nothing was enrolled\.$/, "").replace(/^no face found; /, "");
    const title = { no_face: "No face found", multiple_faces: "Several faces", no_landmarks: "Face not clear enough",
      duplicate_photo: "Already enrolled", image_too_large: "Image too large", invalid_image: "Not a readable image" }[e.code];
    return (title ? title + ": " : e.code + ": ") + msg;
  }

  async function enroll(ev) {
    ev.preventDefault();
    const name = $("enroll-name").value.trim();
    const status = $("enroll-status");
    if (!name) { status.textContent = "Give the person a name."; status.className = "err"; return; }
    const todo = photos.filter((p) => p.state === "new" || p.state === "err" && p.url);
    if (!todo.length) { status.textContent = "Add at least one photo (drop it above)."; status.className = "err"; return; }
    $("enroll-btn").disabled = true;
    status.className = "";
    status.textContent = "Enrolling " + name + "…";
    const same = (a, b) => a.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, " ").trim() === b.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, " ").trim();
    let target = identities.find((i) => same(i.name, name));
    let ok = 0;
    for (const p of todo) {
      p.state = "busy"; p.msg = "checking…"; renderPhoto(p);
      const send = () => {
        const fd = new FormData();
        if (!target) fd.append("name", name);
        fd.append("photos", p.file, p.file.name);
        return apiJSON(target ? "/v1/identities/" + encodeURIComponent(target.id) + "/photos" : "/v1/identities", { method: "POST", body: fd });
      };
      let r = await send();
      if (r.status === 409 && r.body && r.body.error && r.body.error.code === "identity_exists") {
        await loadIdentities();
        target = identities.find((i) => same(i.name, name));
        if (target) r = await send();
      }
      if (r.status === 201) {
        target = { id: r.body.identity.id, name: r.body.identity.name };
        p.state = "ok"; p.msg = "enrolled: " + chosenFace(r.body.faces && r.body.faces[0]); ok++;
      } else {
        p.state = "err"; p.msg = explain(r);
      }
      renderPhoto(p);
    }
    $("enroll-btn").disabled = false;
    const failed = todo.length - ok;
    status.className = ok ? "ok" : "err";
    status.textContent = ok ? "Enrolled " + (target ? target.name : name) + " with " + ok + " photo" + (ok === 1 ? "" : "s") +
      (failed ? "; " + failed + " refused (see each photo)" : "") + ". The live view names them within seconds." :
      "Nothing enrolled: every photo was refused (see each photo).";
    status.dataset.enrolled = ok;
    loadIdentities();
  }
  $("enroll-form").addEventListener("submit", enroll);
  $("enroll-clear").addEventListener("click", () => {
    for (const p of photos) if (p.url) URL.revokeObjectURL(p.url);
    photos.length = 0;
    $("enroll-photos").textContent = "";
    $("enroll-status").textContent = "";
  });
  $("enroll-files").addEventListener("change", (e) => { addPhotos(e.target.files); e.target.value = ""; });
  const drop = $("drop");
  for (const t of ["dragenter", "dragover"]) drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const t of ["dragleave", "drop"]) drop.addEventListener(t, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); e.stopPropagation(); addPhotos(e.dataTransfer.files); });
  // Files dropped elsewhere on the gallery tab go to the enrollment too, not to a new page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => {
    e.preventDefault();
    if (document.body.dataset.tab === "gallery" && e.dataTransfer && e.dataTransfer.files.length) addPhotos(e.dataTransfer.files);
  });

  // ---- Classifiers -----------------------------------------------------------------------
  let classifiers = [];
  async function loadClassifiers(pre) {
    if (!features.classifiers) return;
    const r = pre || (await apiJSON("/v1/classifiers"));
    if (r.status !== 200) return;
    classifiers = r.body.classifiers || [];
    const ul = $("classifiers");
    ul.textContent = "";
    const sel = $("clf-try-model");
    const was = sel.value;
    sel.textContent = "";
    sel.append(el("option", { value: "", text: "all" }));
    for (const c of classifiers) {
      const m = c.manifest || {};
      const labels = (m.labels || []).length;
      ul.append(el("li", { "data-name": c.name, "data-state": c.state },
        el("span", { class: "name", text: c.name }),
        el("span", { class: c.state === "loaded" ? "status-ok" : "status-err", text: c.state }),
        el("span", { class: "muted", text: [m.target, labels ? labels + " labels" : "", c.error || ""].filter(Boolean).join(" · ") }),
        el("span", { class: "actions" }, el("button", { type: "button", class: "danger", text: "Delete", onclick: async () => {
          const d = await apiJSON("/v1/classifiers/" + encodeURIComponent(c.name), { method: "DELETE" });
          if (d.status !== 204) $("clf-upload-status").textContent = "Delete failed: " + errText(d);
          loadClassifiers();
        } }))));
      sel.append(el("option", { value: c.name, text: c.name }));
    }
    sel.value = classifiers.some((c) => c.name === was) ? was : "";
    $("classifiers-empty").hidden = classifiers.length > 0;
  }
  $("clf-upload").addEventListener("submit", async (e) => {
    e.preventDefault();
    const st = $("clf-upload-status");
    const fd = new FormData();
    fd.append("manifest", $("clf-manifest").files[0]);
    fd.append("model", $("clf-model").files[0]);
    st.className = ""; st.textContent = "Uploading and checking the model…";
    const r = await apiJSON("/v1/classifiers", { method: "POST", body: fd });
    st.className = r.status === 201 ? "status-ok" : "status-err";
    st.textContent = r.status === 201 ? "Registered " + r.body.name + " (" + r.body.state + ")." : "Refused: " + errText(r);
    loadClassifiers();
  });
  function renderPredictions(out, body) {
    out.textContent = "";
    const preds = body.predictions || [];
    out.append(el("p", { class: "muted", text: body.width + "x" + body.height + (body.faces ? ", " + body.faces + (body.faces === 1 ? " face" : " faces") : "") }));
    if (!preds.length) out.append(el("p", { text: "No prediction (no classifier applies, or no face for a face classifier)." }));
    for (const p of preds) {
      const scores = Object.entries(p.scores || { [p.label]: p.score }).sort((a, b) => b[1] - a[1]).slice(0, 5);
      out.append(el("h3", { "data-label": p.label, text: p.model + " (" + p.target + "): " + p.label + " " + fmt(p.score, 2) + (p.reported ? "" : " — below its threshold") }));
      const ul = el("ul", { class: "bars" });
      for (const [label, score] of scores) {
        const bar = el("div", { class: "bar" });
        bar.style.width = Math.max(1, Math.round(score * 100)) + "%";
        ul.append(el("li", {}, el("span", { text: label }), el("div", {}, bar), el("span", { text: fmt(score, 2) })));
      }
      out.append(ul);
    }
  }
  $("clf-try").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = $("clf-try-file").files[0];
    const out = $("clf-try-out");
    if (!f) return;
    out.textContent = "Classifying…";
    const model = $("clf-try-model").value;
    const r = await apiJSON("/v1/classify" + (model ? "?model=" + encodeURIComponent(model) : ""), {
      method: "POST", headers: { "Content-Type": f.type || "application/octet-stream" }, body: f });
    if (r.status !== 200) { out.textContent = "Failed: " + errText(r); return; }
    renderPredictions(out, r.body);
  });

  // Training projects: create, upload the ZIP (with upload progress), train, poll progress.
  async function loadProjects(pre) {
    const r = pre || (await apiJSON("/v1/classifier-projects"));
    if (r.status !== 200) return;
    const ul = $("projects");
    ul.textContent = "";
    for (const p of r.body.projects || []) {
      const prog = p.progress ? " " + p.progress.phase + " " + p.progress.done + "/" + p.progress.total : "";
      ul.append(el("li", { "data-name": p.name, "data-state": p.state },
        el("span", { class: "name", text: p.name }),
        el("span", { class: p.state === "failed" ? "status-err" : p.state === "trained" ? "status-ok" : "muted", text: p.state + prog }),
        el("span", { class: "muted", text: p.dataset ? p.dataset.images + " images, " + p.dataset.classes.length + " classes" : (p.error || "") })));
    }
  }
  // loadBackbones offers only the backbones the server has (GET /v1/classifier-backbones): each
  // says what its classifiers look at; without an ImageNet one, a note says how to add one.
  async function loadBackbones() {
    const r = await apiJSON("/v1/classifier-backbones");
    const sel = $("proj-backbone"), was = sel.value;
    sel.textContent = "";
    let list = [];
    if (r.status === 200) list = r.body.backbones || [];
    else list = [{ name: "default", target: "frame" }, { name: "face", target: "face" }]; // a server without the route
    $("bb-box").hidden = r.status !== 200;
    for (const b of list) {
      sel.append(el("option", { value: b.name, "data-target": b.target, text: b.name + " — " + (b.target === "face" ? "each face" : "whole frame") }));
    }
    if (list.some((b) => b.name === was)) sel.value = was;
    else { const frame = list.find((b) => b.target === "frame"); if (frame) sel.value = frame.name; }
    const hasFrame = list.some((b) => b.target === "frame");
    $("proj-no-backbone").hidden = hasFrame;
    sel.dataset.count = list.length;
    const ul = $("backbones");
    ul.textContent = "";
    for (const b of list.filter((b) => !b.builtin && r.status === 200)) {
      ul.append(el("li", { "data-name": b.name },
        el("span", { class: "name", text: b.name }),
        el("span", { class: "muted", text: Math.round(b.size / 1e5) / 10 + " MB · sha256 " + (b.sha256 || "").slice(0, 12) + "…", title: b.sha256 || "" }),
        el("button", { type: "button", class: "danger", text: "delete", onclick: async () => {
          if (!confirm("Delete the backbone " + b.name + "? Classifiers trained on it keep working.")) return;
          const d = await apiJSON("/v1/classifier-backbones/" + encodeURIComponent(b.name), { method: "DELETE" });
          if (d.status !== 204) $("bb-status").textContent = errText(d);
          loadBackbones();
        } })));
    }
  }
  $("bb-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = $("bb-file").files[0], st = $("bb-status");
    if (!file) return;
    const name = $("bb-name").value.trim() || file.name.replace(/\.onnx$/i, "").toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^[-_]+/, "").slice(0, 64);
    st.className = ""; st.textContent = "Uploading " + name + "…";
    const r = await apiJSON("/v1/classifier-backbones/" + encodeURIComponent(name), { method: "PUT",
      headers: { "Content-Type": "application/octet-stream" }, body: file });
    if (r.status === 201) {
      st.className = "status-ok"; st.textContent = "Added backbone " + r.body.name + " (sha256 " + r.body.sha256.slice(0, 12) + "…): pick it above to train.";
      $("bb-form").reset();
    } else {
      st.className = "status-err"; st.textContent = "Refused: " + errText(r);
    }
    await loadBackbones();
    if (r.status === 201) $("proj-backbone").value = r.body.name;
  });
  // reportLine summarises a training report's accuracy, when it has one.
  function reportLine(r) {
    if (!r) return "";
    const parts = [];
    if (typeof r.val_accuracy === "number") parts.push("validation accuracy " + fmt(r.val_accuracy * 100, 0) + "%");
    if (r.cross_validation && typeof r.cross_validation.mean === "number") parts.push("cross-validation " + fmt(r.cross_validation.mean * 100, 0) + "%");
    return parts.length ? " " + parts.join(", ") + "." : "";
  }
  function uploadWithProgress(url, file, onProgress) {
    return new Promise((resolve) => {
      const x = new XMLHttpRequest();
      x.open("PUT", url);
      x.setRequestHeader("Content-Type", "application/zip");
      if (token) x.setRequestHeader("Authorization", "Bearer " + token);
      x.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
      x.addEventListener("load", () => { let body = null; try { body = JSON.parse(x.responseText); } catch (e) { /* none */ } resolve({ status: x.status, body }); });
      x.addEventListener("error", () => resolve({ status: 0, body: null }));
      x.send(file);
    });
  }
  $("proj-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("proj-name").value.trim(), zip = $("proj-zip").files[0];
    const st = $("proj-status"), bar = $("proj-progress");
    const fail = (what, r) => { st.className = "status-err"; st.textContent = what + ": " + errText(r); bar.hidden = true; };
    st.className = ""; st.textContent = "Creating the project…"; st.dataset.phases = "";
    let r = await apiJSON("/v1/classifier-projects", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name, backbone: $("proj-backbone").value, target: ($("proj-backbone").selectedOptions[0] || { dataset: {} }).dataset.target || "frame" }) });
    if (r.status !== 201 && !(r.status === 409 && r.body && r.body.error.code === "project_exists")) return fail("Create", r);
    bar.hidden = false; bar.value = 0;
    st.textContent = "Uploading the dataset…";
    r = await uploadWithProgress("/v1/classifier-projects/" + encodeURIComponent(name) + "/dataset", zip, (f) => { bar.value = f; st.textContent = "Uploading the dataset… " + Math.round(f * 100) + "%"; });
    if (r.status !== 200) return fail("Dataset refused", r);
    st.textContent = "Dataset: " + r.body.dataset.images + " images in " + r.body.dataset.classes.length + " classes. Starting training…";
    r = await apiJSON("/v1/classifier-projects/" + encodeURIComponent(name) + "/train", { method: "POST" });
    if (r.status !== 202) return fail("Training refused", r);
    for (;;) {
      await new Promise((res) => setTimeout(res, 1000));
      r = await apiJSON("/v1/classifier-projects/" + encodeURIComponent(name));
      if (r.status !== 200) return fail("Project", r);
      const p = r.body;
      if (p.progress && p.progress.total) {
        bar.value = p.progress.done / p.progress.total;
        st.textContent = "Training: " + p.progress.phase + " " + p.progress.done + "/" + p.progress.total;
        const seen = new Set((st.dataset.phases || "").split(" ").filter(Boolean));
        seen.add(p.progress.phase);
        st.dataset.phases = [...seen].join(" ");
      }
      if (p.state === "trained") {
        bar.value = 1;
        st.className = "status-ok";
        st.textContent = "Trained: classifier " + (p.classifier || name) + " is registered." + reportLine(p.report);
        st.dataset.done = "trained";
        break;
      }
      if (p.state === "failed" || p.state === "interrupted") {
        st.className = "status-err"; st.textContent = "Training " + p.state + ": " + (p.error || ""); st.dataset.done = p.state; break;
      }
    }
    loadProjects();
    loadClassifiers();
  });

  // ---- "Use my camera": the WHIP publish page in a frame, and its stream in the live view ----
  $("camera-btn").addEventListener("click", () => {
    const name = "cam-" + Math.random().toString(36).slice(2, 7);
    $("camera-stream").textContent = name;
    $("camera-frame").src = "/publish/" + encodeURIComponent(name) + (token ? "#token=" + encodeURIComponent(token) : "");
    $("camera").hidden = false;
    $("camera-btn").hidden = true;
    $("panel-live").classList.add("camera-on"); // a wider column: the publish page's preview and controls
    document.body.dataset.camera = name;
    select(name);
  });
  $("camera-stop").addEventListener("click", () => {
    $("camera-frame").src = "about:blank"; // the publish page ends its WHIP session on pagehide
    $("camera").hidden = true;
    $("camera-btn").hidden = false;
    $("panel-live").classList.remove("camera-on");
    delete document.body.dataset.camera;
  });

  // ---- Start -----------------------------------------------------------------------------
  async function loop(fn, ms) {
    for (;;) {
      try { await fn(); } catch (e) { console.error(e); }
      await new Promise((res) => setTimeout(res, ms));
    }
  }
  (async () => {
    await Promise.all([measureClock(), probeFeatures()]);
    document.body.dataset.ready = "1";
    // The live stream itself brings its stream's stats every second; these polls keep the rest
    // fresh at a pace that stays within modest rate limits.
    loop(pollStreams, 2000);
    loop(pollEvents, 1500);
    loop(reportLatency, 3000);
    setInterval(measureClock, 60000);
  })();
})();
