"use strict";
// People tab (unknown people: GET /v1/unknowns, name one in one step with
// POST /v1/unknowns/{id}/enroll) and search by photo on the Events tab (POST /v1/search/faces).
// Kept apart from app.js; it uses the same session token and hides what the server lacks.
(() => {
  const $ = (id) => document.getElementById(id);
  const token = () => sessionStorage.getItem("vigil-token") || "";
  const headers = (h) => Object.assign({}, h || {}, token() ? { Authorization: "Bearer " + token() } : {});
  async function call(path, opts) {
    opts = Object.assign({}, opts || {});
    opts.headers = headers(opts.headers);
    try {
      const r = await fetch(path, opts);
      let body = null;
      if (r.status !== 204) { try { body = await r.json(); } catch (e) { body = null; } }
      return { status: r.status, body };
    } catch (e) {
      return { status: 0, body: { error: { code: "network", message: e.message || String(e) } } };
    }
  }
  const errText = (r) => (r.body && r.body.error ? r.body.error.code + ": " + r.body.error.message : r.status ? "HTTP " + r.status : "the server could not be reached");
  const when = (s) => { const d = new Date(s); return isNaN(d) ? "" : d.toLocaleString(); };
  function image(path) {
    const img = document.createElement("img");
    img.alt = "snapshot";
    img.className = "people-snap";
    if (!path) return img;
    if (!token()) { img.src = path; return img; }
    fetch(path, { headers: headers() }).then((r) => (r.ok ? r.blob() : null)).then((b) => { if (b) img.src = URL.createObjectURL(b); }).catch(() => {});
    return img;
  }

  // ---- People ---------------------------------------------------------------------------
  async function loadPeople() {
    const grid = $("people-grid"), st = $("people-status");
    const r = await call("/v1/unknowns");
    grid.textContent = "";
    if (r.status !== 200) { st.textContent = errText(r); return; }
    const list = r.body.unknowns || [];
    st.textContent = list.length ? list.length + " unknown people, most seen first" : "No unknown person yet.";
    for (const u of list) {
      const card = document.createElement("div");
      card.className = "person";
      card.dataset.id = u.id;
      const info = document.createElement("p");
      info.textContent = u.sightings + " sightings · " + (u.streams || []).join(", ") + " · last " + when(u.last_seen);
      const form = document.createElement("form");
      const name = document.createElement("input");
      name.placeholder = "Name this person"; name.required = true; name.maxLength = 128;
      const ok = document.createElement("button"); ok.textContent = "Enrol";
      const msg = document.createElement("span"); msg.className = "muted";
      form.append(name, ok, msg);
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const res = await call("/v1/unknowns/" + encodeURIComponent(u.id) + "/enroll", {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: name.value }) });
        if (res.status === 201) { msg.textContent = "enrolled as " + res.body.name; setTimeout(loadPeople, 800); }
        else msg.textContent = errText(res);
      });
      card.append(image(u.snapshot), info, form);
      grid.append(card);
    }
  }

  // "Name this person" from an event of an unknown face: the track's search result carries its
  // unknown_id; the People tab opens on it.
  window.addEventListener("vigil-name-person", (e) => { showPeople(e.detail && e.detail.unknown_id); });
  async function showPeople(focus) {
    const tab = document.querySelector('#tabs button[data-tab="people"]');
    if (tab) tab.click();
    await loadPeople();
    if (focus) { const c = document.querySelector('.person[data-id="' + CSS.escape(focus) + '"]'); if (c) { c.scrollIntoView(); c.querySelector("input").focus(); } }
  }

  // ---- Search by photo (Events tab) -------------------------------------------------------
  async function searchPhoto(file) {
    const out = $("search-results"), st = $("search-status");
    out.textContent = "";
    st.textContent = "searching…";
    const fd = new FormData();
    fd.append("image", file);
    const r = await call("/v1/search/faces", { method: "POST", body: fd });
    if (r.status !== 200) { st.textContent = errText(r); return; }
    const list = (r.body.sightings || []).slice().sort((a, b) => new Date(a.first_seen) - new Date(b.first_seen));
    st.textContent = list.length ? list.length + " sightings, oldest first" : "Nobody like this in the history.";
    for (const s of list) {
      const li = document.createElement("li");
      li.className = "sighting";
      const who = s.identity || (s.unknown_id ? "unknown " + s.unknown_id : "unknown");
      const p = document.createElement("span");
      p.textContent = when(s.first_seen) + " · " + s.stream + " · " + who + " · similarity " + s.similarity.toFixed(2);
      li.append(image(s.snapshot), p);
      if (!s.identity && s.unknown_id) {
        const b = document.createElement("button");
        b.type = "button"; b.textContent = "Name this person";
        b.addEventListener("click", () => showPeople(s.unknown_id));
        li.append(b);
      }
      out.append(li);
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const [unk, search] = await Promise.all([call("/v1/unknowns"), call("/v1/search/faces", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })]);
    const tab = $("tab-people");
    if (tab) {
      tab.hidden = unk.status !== 200;
      tab.addEventListener("click", loadPeople);
    }
    const box = $("search-drop");
    if (!box) return;
    box.hidden = search.status === 404 || search.status === 0;
    const input = box.querySelector("input[type=file]");
    box.addEventListener("click", () => input.click());
    input.addEventListener("change", () => { if (input.files[0]) searchPhoto(input.files[0]); });
    box.addEventListener("dragover", (e) => { e.preventDefault(); box.classList.add("over"); });
    box.addEventListener("dragleave", () => box.classList.remove("over"));
    box.addEventListener("drop", (e) => { e.preventDefault(); box.classList.remove("over"); if (e.dataTransfer.files[0]) searchPhoto(e.dataTransfer.files[0]); });
  });
})();
