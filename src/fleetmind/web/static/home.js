// Mission Control's first page: asks for an API key, then shows /api/status. The key stays in this page's memory.
"use strict";

let apiKey = "";

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
}

function render(status) {
  document.getElementById("summary").textContent =
    `running: ${status.running} · up ${Math.round(status.uptime_s)} s · experts from ${status.experts_from}` +
    ` · served ${status.requests.served} · failed ${status.requests.failed} · in flight ${status.requests.in_flight}` +
    (status.discovery_error ? ` · registry error: ${status.discovery_error}` : "");
  const experts = document.getElementById("experts");
  experts.replaceChildren();
  for (const e of status.experts) {
    const row = document.createElement("tr");
    cell(row, e.name); cell(row, e.url); cell(row, e.source);
    cell(row, e.healthy ? "healthy" : "unhealthy", e.healthy ? "ok" : "bad");
    cell(row, e.served); cell(row, e.failed); cell(row, e.last_error);
    experts.appendChild(row);
  }
  const recent = document.getElementById("recent");
  recent.replaceChildren();
  for (const r of status.recent) {
    const row = document.createElement("tr");
    cell(row, r.id); cell(row, r.outcome, r.outcome === "done" ? "ok" : "bad"); cell(row, r.expert);
    cell(row, r.completion_tokens);
    recent.appendChild(row);
  }
  document.getElementById("raw").textContent = JSON.stringify(status, null, 2);
  document.getElementById("status").hidden = false;
}

async function refresh() {
  const message = document.getElementById("message");
  try {
    const resp = await fetch("/api/status", { headers: { Authorization: `Bearer ${apiKey}` } });
    const body = await resp.json();
    if (!resp.ok) {
      message.textContent = body.error ? body.error.message : `HTTP ${resp.status}`;
      message.className = "bad";
      document.getElementById("status").hidden = true;
      return false;
    }
    message.textContent = "";
    render(body);
    return true;
  } catch (err) {
    message.textContent = `cannot reach the agent: ${err}`;
    message.className = "bad";
    return false;
  }
}

let timer = null;
document.getElementById("key-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  apiKey = document.getElementById("key").value.trim();
  if (timer) clearInterval(timer);
  if (await refresh()) timer = setInterval(refresh, 5000);
});
