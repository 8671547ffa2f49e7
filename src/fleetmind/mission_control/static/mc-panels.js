// Mission Control, panels: chat, approvals, tool console, cluster view and saved state. Each panel refreshes
// itself from the REST API when a live event says something it shows has changed.
"use strict";

(() => {
  const { $, el } = MC;

  // --- chat --------------------------------------------------------------------------------------------------
  const newConversationId = () => `mc-${Math.random().toString(36).slice(2, 10)}`;
  let conversation = sessionStorage.getItem("fleetmind.conversation") || newConversationId();
  sessionStorage.setItem("fleetmind.conversation", conversation);

  const addMessage = (role, text, meta) => {
    const body = el("span", { class: "text", text });
    const li = el("li", { class: `msg ${role}`, "data-role": role, "data-testid": `chat-${role}` }, body);
    if (meta) li.append(el("span", { class: "meta", text: meta }));
    $("chat-log").append(li);
    $("chat-log").scrollTop = $("chat-log").scrollHeight;
    return li;
  };

  const showConversation = async (id) => {
    conversation = id;
    sessionStorage.setItem("fleetmind.conversation", id);
    $("chat-log").replaceChildren();
    const res = await MC.api("GET", `/api/conversations/${encodeURIComponent(id)}`);
    if (!res.ok) return;
    for (const m of res.body.messages) {
      if (m.role === "user" || m.role === "assistant") addMessage(m.role, m.content || "");
      else if (m.name === "summary") addMessage("assistant", m.content || "", "summary of earlier messages");
    }
  };

  const refreshConversations = async (adoptLatest) => {
    const res = await MC.api("GET", "/api/conversations");
    if (!res.ok) return;
    const ids = res.body.conversations.map((c) => c.id);
    if (adoptLatest && !ids.includes(conversation) && ids.length) conversation = ids[ids.length - 1];
    const select = $("conversation-select");
    select.replaceChildren(...[...new Set([...ids, conversation])].map((id) => el("option", { value: id, text: id })));
    select.value = conversation;
    await showConversation(conversation);
  };

  const sendChat = async (text) => {
    addMessage("user", text);
    const bubble = addMessage("assistant", "");
    bubble.dataset.state = "streaming";
    const textNode = bubble.querySelector(".text");
    const meta = el("span", { class: "meta", text: "…" });
    bubble.append(meta);
    const body = {
      messages: [{ role: "user", content: text }],
      conversation_id: conversation,
      params: { max_tokens: 128 },
    };
    try {
      const resp = await MC.api("POST", "/api/agent/chat", body, { raw: true });
      if (!resp.ok) {
        const err = await resp.json().catch(() => null);
        throw new Error(err && err.error ? err.error.message : `HTTP ${resp.status}`);
      }
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (!line) continue;
          const ev = JSON.parse(line);
          if (ev.type === "delta") textNode.textContent += ev.text;
          else if (ev.type === "done") {
            bubble.dataset.state = "done";
            const tokens = ev.usage ? `${ev.usage.completion_tokens} tokens` : "";
            meta.textContent = [ev.expert, tokens].filter(Boolean).join(" · ");
          } else if (ev.type === "error") {
            bubble.dataset.state = "error";
            meta.textContent = `error (${ev.code}): ${ev.message}`;
            meta.className = "meta bad";
          }
        }
      }
      if (bubble.dataset.state === "streaming") { bubble.dataset.state = "error"; meta.textContent = "the answer ended early"; }
    } catch (err) {
      bubble.dataset.state = "error";
      meta.textContent = String(err.message || err);
      meta.className = "meta bad";
    }
  };

  $("chat-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("chat-input").value.trim();
    if (!text) return;
    $("chat-input").value = "";
    sendChat(text);
  });
  $("conversation-select").addEventListener("change", (ev) => showConversation(ev.target.value));
  $("conversation-new").addEventListener("click", () => refreshConversations(false).then(() => {
    conversation = newConversationId();
    const select = $("conversation-select");
    select.append(el("option", { value: conversation, text: conversation }));
    select.value = conversation;
    showConversation(conversation);
  }));

  // --- approvals ---------------------------------------------------------------------------------------------
  // Approving a request one's own key made needs its one-time code (`fleetmind approvals code ID` on the agent's
  // machine): the server says so with 403 self_approval, and the page asks for the code.
  const decide = async (id, verb, code) => {
    const body = code ? { note: "", code } : { note: "" };
    const res = await MC.api("POST", `/api/approvals/${encodeURIComponent(id)}/${verb}`, body);
    if (res.status === 403 && res.body && res.body.error && res.body.error.code === "self_approval") {
      const entered = window.prompt(`${MC.errorText(res)}\n\nThe approval code of ${id}:`);
      if (entered && entered.trim()) return decide(id, verb, entered.trim());
    }
    if (!res.ok) MC.setStatus(`could not ${verb}: ${MC.errorText(res)}`, "bad");
    refreshApprovals();
  };

  const refreshApprovals = async () => {
    const res = await MC.api("GET", "/api/approvals");
    if (!res.ok) return;
    const { pending, recent } = res.body;
    $("approvals-count").textContent = String(pending.length);
    $("approvals-count").className = `badge ${pending.length ? "warn" : ""}`;
    $("approvals-empty").hidden = pending.length > 0;
    $("approvals-pending").replaceChildren(...pending.map((p) => el("li", { "data-testid": `approval-${p.id}`, "data-tool": p.tool },
      el("div", {}, el("strong", { text: p.tool }), " ", el("span", { class: "badge warn", text: p.risk }),
        el("span", { class: "muted", text: ` asked by ${p.requester} · expires ${MC.time(p.expires_at)}` })),
      p.reason ? el("div", { text: p.reason }) : null,
      el("pre", { text: JSON.stringify(p.arguments, null, 2) }),
      el("div", { class: "row" },
        el("button", { type: "button", class: "approve", "data-testid": `approve-${p.id}`, onclick: () => decide(p.id, "approve"), text: "Approve" }),
        el("button", { type: "button", class: "deny", "data-testid": `deny-${p.id}`, onclick: () => decide(p.id, "deny"), text: "Deny" })))));
    $("approvals-recent").replaceChildren(...recent.slice(0, 20).map((d) => el("li", { "data-testid": `decision-${d.id}` },
      el("span", { class: d.outcome === "approved" ? "ok" : "bad", text: d.outcome }),
      ` ${d.tool} · ${d.by || "nobody"} · ${MC.time(d.at)}${d.note ? ` · ${d.note}` : ""}`)));
  };

  // --- tools ---------------------------------------------------------------------------------------------------
  let tools = [];
  const showTool = () => {
    const spec = tools.find((t) => t.name === $("tool-select").value);
    $("tool-risk").textContent = spec ? spec.risk : "";
    $("tool-risk").className = `badge ${spec && spec.risk === "safe" ? "ok" : "warn"}`;
    $("tool-description").textContent = spec ? spec.description : "";
  };

  const refreshTools = async () => {
    const res = await MC.api("GET", "/api/tools");
    if (!res.ok) return;
    tools = res.body.tools;
    const current = $("tool-select").value;
    $("tool-select").replaceChildren(...tools.map((t) => el("option", { value: t.name, text: `${t.name} (${t.risk})` })));
    if (current) $("tool-select").value = current;
    showTool();
  };

  const refreshRuns = async () => {
    const res = await MC.api("GET", "/api/tools/runs");
    if (!res.ok) return;
    $("tool-runs").replaceChildren(...res.body.runs.map((r) => {
      const cls = r.status === "running" ? "warn" : r.error ? "bad" : "ok";
      const li = el("li", { "data-testid": `run-${r.id}`, "data-status": r.status, "data-tool": r.tool },
        el("div", {}, el("strong", { text: r.tool }), " ", el("span", { class: `badge ${cls}`, "data-testid": "run-status", text: r.status }),
          el("span", { class: "muted", text: ` ${r.id} · ${MC.time(r.started_at)}` })),
        el("pre", { class: "muted", text: JSON.stringify(r.arguments) }));
      if (r.status === "running") li.append(el("div", { class: "muted", text: "waiting (approval or the tool itself)…" }));
      if (r.approval) li.append(el("div", { class: "muted", text: `approval: ${r.approval.outcome} by ${r.approval.by || "nobody"}` }));
      if (r.error) li.append(el("pre", { class: "bad", "data-testid": "run-error", text: r.error }));
      if (r.output !== null && r.output !== undefined) {
        const out = typeof r.output === "string" ? r.output : JSON.stringify(r.output, null, 2);
        li.append(el("pre", { "data-testid": "run-output", text: out }));
      }
      return li;
    }));
  };

  $("tool-select").addEventListener("change", showTool);
  $("tool-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let args;
    try { args = JSON.parse($("tool-args").value || "{}"); } catch (err) {
      $("tool-message").textContent = `arguments are not JSON: ${err.message}`; $("tool-message").className = "bad"; return;
    }
    // the previous run's message goes first, so nobody mistakes it for this one's
    $("tool-message").textContent = "starting…"; $("tool-message").className = "";
    const res = await MC.api("POST", `/api/tools/${encodeURIComponent($("tool-select").value)}/run`, { arguments: args });
    $("tool-message").textContent = res.ok ? `started ${res.body.id}` : MC.errorText(res);
    $("tool-message").className = res.ok ? "ok" : "bad";
    refreshRuns();
  });

  // --- cluster and status ----------------------------------------------------------------------------------------
  const renderStatus = (s) => {
    $("status-summary").textContent = `agent ${s.running ? "running" : "not running"} · up ${Math.round(s.uptime_s)} s · ` +
      `served ${s.requests.served} · failed ${s.requests.failed} · in flight ${s.requests.in_flight} · experts from ${s.experts_from}` +
      (s.discovery_error ? ` · registry error: ${s.discovery_error}` : "");
    const rows = [];
    const cluster = s.cluster;
    if (!cluster || !cluster.available) {
      rows.push(el("tr", {}, el("td", { colspan: "7", class: "muted", text: `no orchestrator view: ${cluster ? cluster.error : "n/a"}` })));
    } else {
      for (const job of cluster.jobs) {
        const services = job.services.map((x) => `${x.name}: ${x.health}`).join(", ");
        const tasks = job.tasks.length ? job.tasks : [{ task: "-", state: "-", restarts: 0, failed: false }];
        for (const t of tasks) {
          rows.push(el("tr", { "data-testid": `job-${job.id}` }, el("td", { text: job.id }), el("td", { text: job.status }),
            el("td", { text: t.task }), el("td", { class: t.failed ? "bad" : "", text: t.state }),
            el("td", { class: t.restarts ? "warn" : "", text: t.restarts }),
            el("td", { class: job.services.every((x) => x.health === "passing") ? "ok" : "bad", text: services }),
            el("td", { class: t.cause ? "bad" : "", "data-testid": `cause-${job.id}-${t.task}`, text: t.cause || "" })));
        }
      }
    }
    $("cluster-jobs").replaceChildren(...rows);
    const lastBy = {};
    for (const r of s.recent) if (r.expert && !(r.expert in lastBy)) lastBy[r.expert] = r.at;
    $("experts").replaceChildren(...s.experts.map((e) => el("tr", { "data-testid": `expert-${e.name}` },
      el("td", { text: e.name }), el("td", { class: e.healthy ? "ok" : "bad", text: e.healthy ? "healthy" : "unhealthy" }),
      el("td", { text: e.served }), el("td", { text: e.failed }),
      el("td", { text: lastBy[e.name] ? MC.time(lastBy[e.name]) : "" }), el("td", { class: "bad", text: e.last_error }))));
    $("recent").replaceChildren(...s.recent.map((r) => el("tr", {},
      el("td", { text: r.id }), el("td", { class: r.outcome === "done" ? "ok" : "bad", text: r.outcome }),
      el("td", { text: r.expert }), el("td", { text: r.completion_tokens }), el("td", { text: MC.time(r.at) }))));
  };

  const refreshStatus = async () => {
    const res = await MC.api("GET", "/api/status");
    if (res.ok) renderStatus(res.body);
  };

  // --- state ---------------------------------------------------------------------------------------------------
  const stateMessage = (text, cls) => { $("state-message").textContent = text; $("state-message").className = cls; };

  $("state-save").addEventListener("click", async () => {
    let resp;
    try { resp = await MC.api("POST", "/api/state/save", undefined, { raw: true }); } catch (err) {
      stateMessage(`save failed: ${err.message || err}`, "bad"); return;
    }
    if (!resp.ok) { stateMessage(`save failed: HTTP ${resp.status}`, "bad"); return; }
    const blob = await resp.blob();
    const match = /filename="([^"]+)"/.exec(resp.headers.get("content-disposition") || "");
    const name = match ? match[1] : "fleetmind-state.json";
    const link = el("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    stateMessage(`saved ${name} (${blob.size} bytes)`, "ok");
  });

  $("state-load-file").addEventListener("change", async (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    const res = await MC.api("POST", "/api/state/load", file);
    ev.target.value = "";
    if (!res.ok) { stateMessage(`load failed: ${MC.errorText(res)}`, "bad"); return; }
    stateMessage(`loaded ${file.name} (${res.body.memories} memories)`, "ok");
    await refreshConversations(true);
  });

  // --- self-healing: the supervisor's audit entries, as they arrive on the event stream (backlog first) -----------
  const healingSeen = new Set();
  const renderHealing = (ev) => {
    if (healingSeen.has(ev.seq)) return;
    healingSeen.add(ev.seq);
    const e = ev.data || {};
    const fault = e.fault && typeof e.fault === "object" ? e.fault.kind : e.fault;
    const row = MC.el("tr", { "data-testid": "healing-row", class: `level-${ev.level}` },
      MC.el("td", { text: MC.time(ev.ts) }),
      MC.el("td", { text: e.job }),
      MC.el("td", { text: fault }),
      MC.el("td", { text: e.action }),
      MC.el("td", { text: e.decided_by }),
      MC.el("td", { text: e.outcome }));
    const body = $("healing");
    body.prepend(row);
    while (body.children.length > 200) body.lastChild.remove();
    $("healing-count").textContent = String(healingSeen.size);
  };

  // --- wiring ----------------------------------------------------------------------------------------------------
  let statusTimer = null;
  let statusSoon = null;
  MC.onLogin = async (status) => {
    renderStatus(status);
    if (statusTimer) clearInterval(statusTimer);
    statusTimer = setInterval(refreshStatus, 5000);
    await Promise.all([refreshConversations(false), refreshApprovals(), refreshTools(), refreshRuns()]);
  };
  MC.onLogout = () => { if (statusTimer) clearInterval(statusTimer); statusTimer = null; };
  MC.onEvent((ev) => {
    if (ev.kind === "supervisor.heal") renderHealing(ev);
    if (ev.kind.startsWith("approval_")) refreshApprovals();
    if (ev.kind.startsWith("tool_run_")) refreshRuns();
    if (ev.kind === "agent_answer" || ev.kind === "agent_error") {
      clearTimeout(statusSoon);
      statusSoon = setTimeout(refreshStatus, 300);
    }
  });
})();
