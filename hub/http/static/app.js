// SpottyPottySense hub dashboard: plain JS, no build step, no third-party code.
// Live sessions arrive as Server-Sent Events on /events (read with fetch so the bearer
// token can be sent); everything else is refreshed from the JSON API.
"use strict";

const TOKEN_KEY = "spottypotty-token";
const SVG_NS = "http://www.w3.org/2000/svg";
const REFRESH_MS = 30000;

const state = {
  sensors: [],
  active: new Map(), // sensorId -> session record
  today: null,
  timezone: null,
  refreshTimer: null,
  live: false,
  controls: null, // GET /controls: do-not-disturb per room and hub-wide
};

// --- tiny helpers -------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

function headers() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(path, { headers: headers(), cache: "no-store" });
  if (response.status === 401) {
    showTokenPanel();
    throw new Unauthorized("token needed");
  }
  if (!response.ok) {
    let message = `${response.status}`;
    try { message = (await response.json()).message || message; } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${message}`);
  }
  return response.json();
}

// A control (POST /controls), then the controls again: what the hub says, not what we sent.
async function setControl(body) {
  const response = await fetch("/controls", {
    method: "POST",
    headers: { ...headers(), "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (response.status === 401) {
    showTokenPanel();
    return;
  }
  const answer = await response.json();
  if (!response.ok) {
    $("updated").textContent = `Control refused: ${answer.message}`;
    return;
  }
  state.controls = answer.controls;
  renderControls();
  renderLive();
}

function dndButton(room, on, label) {
  const button = el("button", {
    type: "button",
    class: on ? "dnd on" : "dnd",
    "aria-pressed": on ? "true" : "false",
    title: "Do not disturb: sessions are recorded, no music starts",
    text: on ? `${label}: do not disturb` : `${label}: music on motion`,
  });
  button.addEventListener("click", () => setControl({ control: "dnd", room, value: !on }));
  return button;
}

function renderControls() {
  const box = $("hub-controls");
  box.replaceChildren();
  if (state.controls) box.append(dndButton(null, state.controls.hub.dnd, "Everywhere"));
}

function showTokenPanel() {
  $("token-panel").hidden = false;
  setPill("pill-live", "bad", "sign in needed");
}

function setPill(id, level, text) {
  const pill = $(id);
  pill.className = `pill ${level}`;
  pill.querySelector("span").textContent = text;
}

function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

function clock(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const mm = String(m).padStart(2, "0");
  const ss = String(s).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
}

function minutes(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1) return `${Math.round(value * 60)} s`;
  if (value < 90) return `${value.toFixed(value < 10 ? 1 : 0)} min`;
  return `${(value / 60).toFixed(1)} h`;
}

function timeOfDay(iso) {
  const options = { hour: "2-digit", minute: "2-digit" };
  if (state.timezone) options.timeZone = state.timezone;
  try { return new Date(iso).toLocaleTimeString([], options); } catch (_) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
}

function shiftDate(day, delta) {
  const [y, m, d] = day.split("-").map(Number);
  const date = new Date(Date.UTC(y, m - 1, d + delta));
  return date.toISOString().slice(0, 10);
}

// --- live sessions ----------------------------------------------------------------------------

function renderLive() {
  const box = $("live-cards");
  box.replaceChildren();
  const ids = new Set(state.sensors.map((s) => s.sensorId));
  const rows = [...state.sensors];
  for (const [sensorId] of state.active) {
    if (!ids.has(sensorId)) rows.push({ sensorId, name: sensorId, lastMotionTime: null });
  }
  if (!rows.length) {
    box.append(el("p", { class: "empty", text: "No sensors configured yet." }));
  }
  for (const sensor of rows) {
    const session = state.active.get(sensor.sensorId);
    const card = el("article", { class: session ? "card active" : "card", "data-sensor": sensor.sensorId });
    const badge = el("span", { class: "badge", text: session ? (session.playbackStarted ? "Playing" : "Active") : "Idle" });
    card.append(el("div", { class: "card-head" }, el("span", { class: "card-name", text: sensor.name || sensor.sensorId }), badge));
    const room = state.controls && state.controls.rooms[sensor.sensorId];
    if (room) card.dataset.dnd = String(room.dnd);
    if (session) {
      card.dataset.session = session.sessionId;
      const time = el("div", { class: "card-time", "data-start": String(session.startTime) });
      time.textContent = clock(Date.now() / 1000 - session.startTime);
      card.append(time);
      const meta = el("div", { class: "card-meta" });
      if (session.playbackStarted) {
        const eq = el("span", { class: "eq", "aria-hidden": "true" }, el("i"), el("i"), el("i"));
        meta.append(eq);
      }
      meta.append(el("span", { text: `since ${timeOfDay(session.startTimeISO)}` }));
      meta.append(el("span", { text: `${session.motionEventsCount} motion${session.motionEventsCount === 1 ? "" : "s"}` }));
      meta.append(el("span", { text: `last motion ${ago(session.lastMotionTime)}` }));
      if (sensor.timeout) meta.append(el("span", { text: sensor.timeout }));
      card.append(meta);
    } else {
      card.append(el("div", { class: "card-time idle", text: "—" }));
      const meta = el("div", { class: "card-meta" }, el("span", { text: `last motion ${ago(sensor.lastMotionTime)}` }));
      if (sensor.timeout) meta.append(el("span", { text: sensor.timeout }));
      card.append(meta);
    }
    if (room) card.append(dndButton(sensor.sensorId, room.dnd, "Here"));
    box.append(card);
  }
  $("glance-active").textContent = String(state.active.size);
}

function tick() {
  for (const node of document.querySelectorAll(".card-time[data-start]")) {
    node.textContent = clock(Date.now() / 1000 - Number(node.dataset.start));
  }
}

async function stream() {
  let delay = 1000;
  for (;;) {
    try {
      const response = await fetch("/events", { headers: headers(), cache: "no-store" });
      if (response.status === 401) { showTokenPanel(); return; }
      if (!response.ok || !response.body) throw new Error(`events: ${response.status}`);
      setPill("pill-live", "ok", "live");
      state.live = true;
      delay = 1000;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handleEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      console.warn(error);
    }
    state.live = false;
    setPill("pill-live", "warn", "reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 30000);
  }
}

function handleEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trim());
  }
  if (name !== "sessions" || !data.length) return;
  const payload = JSON.parse(data.join("\n"));
  const before = [...state.active.values()].map((s) => s.sessionId).sort().join();
  state.active = new Map(payload.active.map((session) => [session.sensorId, session]));
  const after = [...state.active.values()].map((s) => s.sessionId).sort().join();
  renderLive();
  // Later than the server's 1 s answer cache, so the refresh sees what this change wrote.
  if (before !== after) scheduleRefresh(1500);
}

// --- charts -----------------------------------------------------------------------------------

function barChart(container, values, labels, { highlight = -1, labelEvery = 1, title = "" } = {}) {
  const width = 560;
  const height = 200;
  const pad = { top: 18, right: 6, bottom: 22, left: 26 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const tickStep = Math.max(1, Math.ceil(Math.max(1, ...values) / 4));
  const max = tickStep * Math.max(1, Math.ceil(Math.max(1, ...values) / tickStep));
  const step = innerW / values.length;
  const barW = Math.max(2, step * 0.72);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  for (let value = 0; value <= max; value += tickStep) {
    const y = pad.top + innerH - (value / max) * innerH;
    chart.append(svg("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: y, y2: y }));
    const label = svg("text", { class: "axis", x: pad.left - 6, y: y + 3, "text-anchor": "end" });
    label.textContent = String(value);
    chart.append(label);
  }
  values.forEach((value, i) => {
    const h = value ? Math.max(2, (value / max) * innerH) : 2;
    const x = pad.left + i * step + (step - barW) / 2;
    const y = pad.top + innerH - h;
    const cls = value === 0 ? "bar zero" : i === highlight ? "bar peak" : "bar";
    const bar = svg("rect", { class: cls, x, y, width: barW, height: h, rx: 2 });
    const tip = svg("title");
    tip.textContent = `${labels[i]}: ${value}`;
    bar.append(tip);
    chart.append(bar);
    if (value && values.length <= 16) {
      const count = svg("text", { class: "count", x: x + barW / 2, y: y - 4, "text-anchor": "middle" });
      count.textContent = String(value);
      chart.append(count);
    }
    if (i % labelEvery === 0) {
      const label = svg("text", { class: "axis", x: x + barW / 2, y: height - 6, "text-anchor": "middle" });
      label.textContent = labels[i];
      chart.append(label);
    }
  });
  container.replaceChildren(chart);
}

function renderCharts(analytics) {
  const byDay = new Map(analytics.usageByDay.map((u) => [u.date, u.sessions]));
  const days = [];
  for (let i = 13; i >= 0; i -= 1) days.push(shiftDate(state.today, -i));
  const weekday = (day) => {
    const [y, m, d] = day.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d)).toLocaleDateString([], { weekday: "narrow", timeZone: "UTC" }) + d;
  };
  barChart($("chart-daily"), days.map((d) => byDay.get(d) || 0), days.map(weekday), {
    highlight: 13, title: "Sessions per day",
  });
  const hours = analytics.hourlyDistribution;
  const peak = analytics.summary.peakHour;
  barChart($("chart-hours"), hours, hours.map((_, h) => String(h)), {
    highlight: peak === null ? -1 : peak, labelEvery: 3, title: "Sessions by hour of day",
  });
}

// --- the rest ---------------------------------------------------------------------------------

function batteryCell(level) {
  if (level === null || level === undefined) return el("span", { class: "empty", text: "unknown" });
  const icon = svg("svg", { viewBox: "0 0 26 12", "aria-hidden": "true" });
  icon.append(svg("rect", { class: "shell", x: 0.6, y: 0.6, width: 22, height: 10.8, rx: 2 }));
  icon.append(svg("rect", { class: "shell", x: 23, y: 3.5, width: 2, height: 5, rx: 1 }));
  const width = Math.max(1, (Math.min(100, Math.max(0, level)) / 100) * 19);
  icon.append(svg("rect", { class: level < 20 ? "level low" : "level", x: 2, y: 2, width, height: 8, rx: 1 }));
  return el("span", { class: "battery" }, icon, el("span", { text: `${level}%` }));
}

function signalCell(rssi) {
  if (rssi === null || rssi === undefined) return el("span", { class: "empty", text: "unknown" });
  const bars = rssi >= -55 ? 4 : rssi >= -67 ? 3 : rssi >= -78 ? 2 : 1;
  const icon = svg("svg", { viewBox: "0 0 18 12", "aria-hidden": "true" });
  for (let i = 0; i < 4; i += 1) {
    const h = 3 + i * 3;
    icon.append(svg("rect", { class: i < bars ? "on" : "off", x: i * 4.5, y: 12 - h, width: 3, height: h, rx: 0.6 }));
  }
  return el("span", { class: "signal" }, icon, el("span", { text: `${rssi} dBm` }));
}

function renderHealth() {
  const body = $("health-rows");
  body.replaceChildren();
  if (!state.sensors.length) {
    body.append(el("tr", {}, el("td", { colspan: "5", class: "empty", text: "No sensors configured." })));
    return;
  }
  for (const sensor of state.sensors) {
    const level = sensor.online === true ? "ok" : sensor.online === false ? "bad" : "";
    const word = sensor.online === true ? "online" : sensor.online === false ? "offline" : "unknown";
    const status = el("span", { class: `status ${level}`, title: word }, el("i", { class: "dot" }), el("span", { text: word }));
    const name = el("td", {}, el("div", { text: sensor.name || sensor.sensorId }),
      el("small", { class: "empty", text: sensor.enabled ? sensor.source : `${sensor.source} · disabled` }));
    body.append(el("tr", { "data-sensor": sensor.sensorId }, name, el("td", {}, status),
      el("td", { text: ago(sensor.lastMotionTime) }), el("td", {}, batteryCell(sensor.batteryLevel)),
      el("td", {}, signalCell(sensor.signalStrength))));
  }
}

function renderRecent(sessions) {
  const list = $("recent-list");
  list.replaceChildren();
  if (!sessions.length) {
    list.append(el("li", { class: "empty", text: "No sessions yet: wave at a sensor." }));
    return;
  }
  const names = new Map(state.sensors.map((s) => [s.sensorId, s.name || s.sensorId]));
  for (const session of sessions) {
    const duration = session.status === "active" ? "active" : minutes(session.durationMinutes);
    list.append(el("li", {},
      el("span", {}, el("strong", { text: names.get(session.sensorId) || session.sensorId }),
        el("span", { class: "when", text: ` · ${ago(session.startTimeISO)}` })),
      el("span", { class: "dur", text: `${duration}${session.playbackStarted ? " ♪" : ""}` })));
  }
}

function renderGlance(analytics) {
  const { today, week } = analytics.glance;
  $("glance-today").textContent = String(today.sessions);
  $("glance-today-sub").textContent = `${minutes(today.durationMinutes)} of music`;
  $("glance-week").textContent = String(week.sessions);
  $("glance-week-sub").textContent = `${minutes(week.durationMinutes)} · ${week.week}`;
  const peak = analytics.summary.peakHour;
  $("glance-peak").textContent = peak === null ? "–" : `${String(peak).padStart(2, "0")}:00`;
}

function renderSystem(health) {
  const broker = health.broker.connected;
  setPill("pill-broker", broker === true ? "ok" : broker === false ? "bad" : "", broker === true ? "broker connected" : broker === false ? "broker down" : "broker n/a");
  const spotify = health.spotify.state;
  const bad = spotify === "login-needed" || spotify === "premium-required";
  const spotifyLevel = spotify === "logged-in" ? "ok" : bad ? "bad" : "warn";
  setPill("pill-spotify", spotifyLevel, `Spotify: ${spotify.replace("-", " ")}`);
  $("fact-spotify").replaceChildren(spotify.replace("-", " "), el("small", { text: health.spotify.message }));
  const cloud = health.cloud;
  $("fact-sync").textContent = cloud.enabled ? (cloud.lastSyncAt ? ago(cloud.lastSyncAt) : "unknown") : "cloud sync off";
  $("fact-sync-result").textContent = cloud.lastSyncResult || "unknown";
  $("fact-pending").textContent = cloud.pendingSessions === null ? "unknown" : `${cloud.pendingSessions} session(s)`;
  $("fact-db").textContent = health.database.ok ? "ok" : `problem: ${health.database.message}`;
  $("fact-version").textContent = `v${health.version} · ${health.time.timezone}`;
}

async function refresh() {
  try {
    const health = await api("/health");
    state.today = health.time.today;
    state.timezone = health.time.timezone;
    renderSystem(health);
    const since = shiftDate(state.today, -29);
    const [sensors, analytics, recent, controls] = await Promise.all([
      api("/sensors"),
      api(`/analytics?startDate=${since}`),
      api("/sessions?limit=8"),
      api("/controls"),
    ]);
    state.sensors = sensors.sensors;
    state.controls = controls;
    renderControls();
    renderLive();
    renderHealth();
    renderGlance(analytics);
    renderCharts(analytics);
    renderRecent(recent.sessions);
    $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    if (!(error instanceof Unauthorized)) {
      console.error(error);
      $("updated").textContent = `Update failed: ${error.message}`;
    }
  }
}

function scheduleRefresh(delay) {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(async () => {
    await refresh();
    scheduleRefresh(REFRESH_MS);
  }, delay);
}

function start() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-panel").hidden = true;
    scheduleRefresh(0);
    if (!state.live) stream();
  });
  scheduleRefresh(0);
  stream();
  setInterval(tick, 1000);
}

document.addEventListener("DOMContentLoaded", start);
