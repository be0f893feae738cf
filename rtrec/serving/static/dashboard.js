// The rtrec dashboard: polls the API's read-scoped /v1/dashboard routes and renders them.
// Plain DOM, no framework or build step: the API serves this file as it is.
"use strict";

const STREAM_EVERY_MS = 1000;
const MODELS_EVERY_MS = 5000;
const ENTITY_EVERY_MS = 2000;
const RATE_POINTS = 120;

const state = { key: "", user: "", item: "", rates: [] };

function $(id) { return document.getElementById(id); }

function setStatus(text, bad) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", Boolean(bad));
}

async function get(path) {
  const answer = await fetch(path, { headers: { "X-API-Key": state.key }, cache: "no-store" });
  if (!answer.ok) {
    let detail = answer.statusText;
    try { detail = (await answer.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${answer.status} ${detail}`);
  }
  return answer.json();
}

function number(value, digits) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString("en", { maximumFractionDigits: digits === undefined ? 0 : digits });
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  return value >= 10000 ? `${number(value / 1000, 1)} s` : `${number(value)} ms`;
}

function when(epochMs) {
  return new Date(epochMs).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

// Rows of cells (text) into a table body; an empty list shows one muted row saying so.
function fill(tableId, rows, emptyText) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren();
  if (!rows.length) {
    const tr = body.insertRow();
    const td = tr.insertCell();
    td.colSpan = $(tableId).tHead.rows[0].cells.length;
    td.className = "empty";
    td.textContent = emptyText;
    return;
  }
  for (const cells of rows) {
    const tr = body.insertRow();
    for (const cell of cells) {
      const td = tr.insertCell();
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell;
    }
  }
}

function featureTables(containerId, groups) {
  const box = $(containerId);
  box.replaceChildren();
  box.className = "features";
  const names = Object.keys(groups).sort();
  if (!names.length) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "no features stored";
    box.appendChild(p);
    return;
  }
  for (const group of names) {
    const table = document.createElement("table");
    table.dataset.group = group;
    const head = table.createTHead().insertRow();
    const th = document.createElement("th");
    th.colSpan = 2;
    th.textContent = group;
    head.appendChild(th);
    const body = table.createTBody();
    for (const [name, value] of Object.entries(groups[group]).sort()) {
      const tr = body.insertRow();
      tr.insertCell().textContent = name;
      // Epoch-millisecond features (window bounds, last event) read better as times.
      const epoch = (name.endsWith("_ms") || name.endsWith("_ts")) && value > 1e11;
      tr.insertCell().textContent = epoch ? when(value) : number(value, 3);
    }
    box.appendChild(table);
  }
}

function drawRates() {
  const canvas = $("rate-chart");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const points = state.rates;
  if (points.length < 2) return;
  const top = Math.max(1, ...points);
  ctx.strokeStyle = "#2563eb";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach((value, i) => {
    const x = (i / (RATE_POINTS - 1)) * canvas.width;
    const y = canvas.height - 4 - (value / top) * (canvas.height - 8);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#6b7684";
  ctx.font = "11px system-ui";
  ctx.fillText(`max ${number(top, 1)}/s`, 4, 12);
}

function renderStream(s) {
  if (s.error) { setStatus(s.error, true); return; }
  $("events-total").textContent = number(s.events);
  $("event-rate").textContent = number(s.events_per_s, 1);
  $("dlq-total").textContent = number(s.dead_letters);
  $("late-total").textContent = number(s.late_events);
  fill("lag", s.lag.map((j) => [j.job, j.group, j.lag === null ? "no commits yet" : number(j.lag)]), "no jobs");
  const f = s.freshness;
  $("fresh-lists").textContent = number(f.lists);
  $("fresh-p50").textContent = ms(f.p50_ms);
  $("fresh-p95").textContent = ms(f.p95_ms);
  $("fresh-age").textContent = f.newest_age_ms === null ? "–" : `${ms(f.newest_age_ms)} ago`;
  if (s.events_per_s !== null) {
    state.rates.push(s.events_per_s);
    if (state.rates.length > RATE_POINTS) state.rates.shift();
    drawRates();
  }
}

function renderModels(m) {
  $("model-name").textContent = m.model || "";
  if (m.error) {
    fill("versions", [], m.error);
  } else {
    fill("versions", m.versions.map((v) => {
      const tags = document.createElement("span");
      for (const alias of v.aliases) {
        const tag = document.createElement("span");
        tag.className = "alias";
        tag.textContent = alias;
        tags.appendChild(tag);
      }
      return [v.version, tags, when(v.created_ms), number(v.metric, 4)];
    }), "no registered versions");
  }
  fill("ab", (m.ab || []).map((r) => [
    r.model_version, r.arm, number(r.windows), number(r.impressions), number(r.clicks),
    number(r.ctr, 3), number(r.purchases), number(r.conversion, 3), number(r.last_window_ctr, 3),
  ]), "no A/B windows yet");
}

function renderUser(u) {
  $("user-view").hidden = false;
  $("user-stored-as").textContent = u.stored_as;
  const rec = u.recommendations;
  if (rec) {
    $("user-rec-meta").textContent =
      `model ${rec.model_version}, arm ${rec.arm}, computed ${when(rec.computed_at)}, rec ${rec.rec_id}`;
    fill("user-recs", rec.items.map((it, i) => [String(i + 1), it.item_id, number(it.score, 4), it.source, it.reason]), "");
  } else {
    $("user-rec-meta").textContent = "";
    fill("user-recs", [], "no recommendations for this user yet");
  }
  fill("user-recent", u.recent_items.map((r) => [r.id, when(r.ts)]), "no recent items");
  fill("user-categories", u.recent_categories.map((r) => [r.id, when(r.ts)]), "no recent categories");
  featureTables("user-features", u.features);
}

function renderItem(it) {
  $("item-view").hidden = false;
  fill("item-neighbours", it.neighbours.map((n) => [n.item_id, number(n.score, 4)]), "no neighbours yet");
  fill("item-together", it.bought_together.map((n) => [n.item_id, number(n.score, 4)]), "nothing bought together yet");
  featureTables("item-features", it.features);
}

// Each panel polls on its own: one fetch at a time, the next one scheduled after it ends.
function poll(every, load) {
  async function tick() {
    if (state.key) {
      try {
        await load();
        setStatus(`live · ${new Date().toLocaleTimeString("en-GB")}`, false);
      } catch (err) {
        setStatus(String(err.message || err), true);
      }
    }
    setTimeout(tick, every);
  }
  tick();
}

function useKey(key) {
  state.key = key;
  sessionStorage.setItem("rtrec-key", key);
  setStatus(key ? "connecting…" : "waiting for a key", false);
}

async function loadUser() {
  renderUser(await get(`/v1/dashboard/users/${encodeURIComponent(state.user)}`));
}

async function loadItem() {
  renderItem(await get(`/v1/dashboard/items/${encodeURIComponent(state.item)}`));
}

function start() {
  const params = new URLSearchParams(location.search);
  // A key in the address is taken once and removed from it, so it does not linger in history.
  if (params.has("key")) {
    useKey(params.get("key"));
    params.delete("key");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : ""));
  } else {
    useKey(sessionStorage.getItem("rtrec-key") || "");
  }
  $("api-key").value = state.key;
  $("key-form").addEventListener("submit", (e) => { e.preventDefault(); useKey($("api-key").value.trim()); });
  // A submitted id shows at once; polling keeps it live after.
  $("user-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.user = $("user-id").value.trim();
    if (state.user && state.key) loadUser().catch((err) => setStatus(String(err.message || err), true));
  });
  $("item-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.item = $("item-id").value.trim();
    if (state.item && state.key) loadItem().catch((err) => setStatus(String(err.message || err), true));
  });

  poll(STREAM_EVERY_MS, async () => renderStream(await get("/v1/dashboard/stream")));
  poll(MODELS_EVERY_MS, async () => renderModels(await get("/v1/dashboard/models")));
  poll(ENTITY_EVERY_MS, async () => { if (state.user) await loadUser(); });
  poll(ENTITY_EVERY_MS, async () => { if (state.item) await loadItem(); });
}

start();
