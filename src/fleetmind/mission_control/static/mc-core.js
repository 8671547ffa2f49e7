// Mission Control, core: the API key (sessionStorage only), authenticated fetch, and the live event stream
// over a WebSocket that reconnects and resumes after the last sequence number it saw.
"use strict";

const MC = {
  key: sessionStorage.getItem("fleetmind.key") || "",
  epoch: null,
  lastSeq: 0,
  socket: null,
  retryMs: 500,
  stopped: true,
  listeners: [],
  maxLogLines: 1000,
};

MC.$ = (id) => document.getElementById(id);

MC.el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") node.textContent = v === null || v === undefined ? "" : String(v);
    else if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
};

MC.time = (ts) => (ts ? new Date(ts * 1000).toLocaleTimeString() : "");

MC.onEvent = (fn) => MC.listeners.push(fn);

MC.setStatus = (text, cls) => {
  const s = MC.$("key-status");
  s.textContent = text;
  s.className = cls || "";
};

// fetch with the key; resolves to {ok, status, body}. A 401 means the key is no longer good: back to the form.
MC.api = async (method, path, body, opts = {}) => {
  const headers = { Authorization: `Bearer ${MC.key}` };
  let payload;
  if (body instanceof Blob || typeof body === "string") payload = body;
  else if (body !== undefined) { payload = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload });
  } catch (err) {
    // The agent is down or restarting: say so and let the caller carry on; the next refresh tries again.
    MC.setStatus(`cannot reach the agent: ${err.message || err}`, "bad");
    if (opts.raw) throw err;
    return { ok: false, status: 0, body: null, err };
  }
  if (resp.status === 401) MC.refused("the API key was refused");
  else if (MC.$("key-status").classList.contains("bad") && MC.key) MC.setStatus("connected", "ok");
  if (opts.raw) return resp;
  let data = null;
  try { data = await resp.json(); } catch (_) { data = null; }
  return { ok: resp.ok, status: resp.status, body: data };
};

MC.errorText = (res) => (res.body && res.body.error ? res.body.error.message : `HTTP ${res.status}`);

// --- live events -------------------------------------------------------------------------------------------
const LEVELS = ["debug", "info", "warning", "error"];

MC.logVisible = (li) => {
  const min = LEVELS.indexOf(MC.$("log-level").value);
  const filter = MC.$("log-filter").value.trim().toLowerCase();
  const level = LEVELS.indexOf(li.dataset.level || "info");
  return level >= min && (!filter || li.textContent.toLowerCase().includes(filter));
};

MC.appendLog = (li) => {
  const log = MC.$("log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  li.hidden = !MC.logVisible(li);
  log.append(li);
  while (log.childElementCount > MC.maxLogLines) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
};

MC.renderEvent = (ev) => {
  const li = MC.el("li", { class: `lvl-${ev.level}`, "data-seq": ev.seq, "data-kind": ev.kind, "data-level": ev.level },
    MC.el("span", { class: "seq", text: `#${ev.seq}` }),
    MC.el("time", { text: MC.time(ev.ts) }),
    MC.el("span", { class: "kind", text: ev.kind }),
    MC.el("span", { class: "msg", text: ev.message }));
  MC.appendLog(li);
};

MC.renderNotice = (text) => {
  MC.appendLog(MC.el("li", { class: "notice", "data-level": "error", text }));
};

MC.setLive = (text, cls) => {
  const s = MC.$("log-status");
  s.textContent = text;
  s.className = `badge ${cls || ""}`;
};

MC.connect = () => {
  if (MC.stopped) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = MC.epoch ? `?since=${MC.lastSeq}&epoch=${encodeURIComponent(MC.epoch)}` : "";
  const socket = new WebSocket(`${scheme}://${location.host}/api/ws/events${query}`,
    ["fleetmind.events.v1", `fleetmind.key.${MC.key}`]);
  MC.socket = socket;
  MC.setLive("connecting", "warn");
  socket.onmessage = (msg) => {
    const data = JSON.parse(msg.data);
    if (data.type === "hello") {
      if (MC.epoch && data.epoch !== MC.epoch) MC.renderNotice("the agent restarted: its event numbers start again");
      MC.epoch = data.epoch;
      MC.retryMs = 500;
      MC.setLive("live", "ok");
    } else if (data.type === "event") {
      if (data.seq <= MC.lastSeq) return; // already shown before a reconnect
      MC.lastSeq = data.seq;
      MC.$("log-seq").textContent = `last #${data.seq}`;
      MC.renderEvent(data);
      for (const fn of MC.listeners) { try { fn(data); } catch (err) { console.error(err); } }
    } else if (data.type === "dropped") {
      MC.renderNotice(`${data.count} events (#${data.first_seq}–#${data.last_seq}) were not shown: ` +
        (data.reason === "backlog" ? "older than the agent keeps" : "this page fell behind"));
    }
  };
  socket.onclose = (ev) => {
    if (MC.socket !== socket) return;
    MC.socket = null;
    if (ev.code === 4401) { MC.refused("the API key was refused"); return; }
    if (MC.stopped) return;
    MC.setLive(`reconnecting in ${Math.round(MC.retryMs / 100) / 10}s`, "warn");
    setTimeout(MC.connect, MC.retryMs);
    MC.retryMs = Math.min(MC.retryMs * 2, 5000);
  };
};

MC.disconnect = () => {
  MC.stopped = true;
  const socket = MC.socket;
  MC.socket = null;
  if (socket) socket.close();
  MC.setLive("offline", "");
};

// --- the key -------------------------------------------------------------------------------------------------
MC.refused = (why) => {
  MC.disconnect();
  MC.key = "";
  sessionStorage.removeItem("fleetmind.key");
  MC.$("app").hidden = true;
  MC.$("key-forget").hidden = true;
  MC.setStatus(why, "bad");
  if (MC.onLogout) MC.onLogout();
};

MC.login = async (key) => {
  MC.key = key;
  const res = await MC.api("GET", "/api/status");
  if (res.status === 403) { MC.refused(MC.errorText(res)); return false; } // a chat key: not for this page
  if (!res.ok) {
    if (res.status !== 401) MC.setStatus(res.err ? `cannot reach the agent: ${res.err}` : MC.errorText(res), "bad");
    return false;
  }
  sessionStorage.setItem("fleetmind.key", key);
  MC.$("key").value = "";
  MC.$("key-forget").hidden = false;
  MC.$("app").hidden = false;
  MC.setStatus("connected", "ok");
  MC.stopped = false;
  MC.connect();
  if (MC.onLogin) await MC.onLogin(res.body);
  return true;
};

document.addEventListener("DOMContentLoaded", () => {
  MC.$("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    MC.login(MC.$("key").value.trim());
  });
  MC.$("key-forget").addEventListener("click", () => MC.refused("key forgotten"));
  const refilter = () => { for (const li of MC.$("log").children) li.hidden = !MC.logVisible(li); };
  MC.$("log-level").addEventListener("change", refilter);
  MC.$("log-filter").addEventListener("input", refilter);
  if (MC.key) MC.login(MC.key);
});
