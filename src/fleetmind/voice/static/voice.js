// The microphone page: captures 16 kHz PCM (pcm-worklet.js), streams it to /voice/ws, plays the answer audio
// and shows transcripts. Wire format: fleetmind/voice/wire.py. No framework, no build step.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const keyInput = $("key"), talk = $("talk"), status = $("status"), log = $("log");
  keyInput.value = sessionStorage.getItem("fleetmind-key") || "";

  let ws = null, ctx = null, stream = null, node = null;
  let outRate = 16000, playhead = 0, playing = [];
  let partial = null, answer = null;

  function line(cls, text) {
    const p = document.createElement("p");
    p.className = cls;
    p.textContent = text;
    log.appendChild(p);
    log.scrollTop = log.scrollHeight;
    return p;
  }

  function stopPlayback() {
    for (const src of playing) { try { src.stop(); } catch (_) { /* already ended */ } }
    playing = [];
    playhead = 0;
  }

  function play(buf) {
    if (!ctx) return;
    const pcm = new Int16Array(buf);
    const audio = ctx.createBuffer(1, pcm.length, outRate);
    const ch = audio.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
    const src = ctx.createBufferSource();
    src.buffer = audio;
    src.connect(ctx.destination);
    playhead = Math.max(playhead, ctx.currentTime + 0.03);
    src.start(playhead);
    playhead += audio.duration;
    playing.push(src);
    src.onended = () => { playing = playing.filter((s) => s !== src); };
  }

  function onMessage(msg) {
    switch (msg.type) {
      case "ready":
        outRate = msg.output_sample_rate;
        status.textContent = "listening — talk any time, talk over the agent to interrupt";
        break;
      case "vad":
        status.textContent = msg.state === "started" ? "hearing you…" : "thinking…";
        break;
      case "interrupt":
        stopPlayback();
        break;
      case "transcript":
        if (!partial) partial = line("partial", "");
        partial.textContent = "you: " + msg.text;
        if (msg.final) { partial.className = "user"; partial = null; answer = null; }
        break;
      case "answer":
        if (!answer) answer = line("agent", "agent: ");
        answer.textContent += msg.text;
        break;
      case "answer_end":
        if (msg.reason === "interrupted") line("note", "(interrupted)");
        if (msg.reason === "error") line("note", "error: " + msg.message);
        answer = null;
        break;
      case "speaking":
        status.textContent = msg.state === "started" ? "speaking" : "listening";
        break;
      case "error":
        line("note", "error: " + msg.message);
        break;
    }
  }

  async function start() {
    const key = keyInput.value.trim();
    sessionStorage.setItem("fleetmind-key", key);
    ctx = new AudioContext();
    await ctx.audioWorklet.addModule("/voice/pcm-worklet.js");
    stream = await navigator.mediaDevices.getUserMedia({
      // echo cancellation keeps the agent's own voice from interrupting itself
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/voice/ws`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "auth", token: key }));
      const source = ctx.createMediaStreamSource(stream);
      node = new AudioWorkletNode(ctx, "pcm-capture");
      node.port.onmessage = (e) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(e.data); };
      source.connect(node);
      status.textContent = "connecting…";
    };
    ws.onmessage = (e) => {
      if (typeof e.data === "string") onMessage(JSON.parse(e.data));
      else play(e.data);
    };
    ws.onclose = (e) => {
      status.textContent = e.code === 4401 ? "wrong or missing API key" : `disconnected (${e.code})`;
      stop();
    };
    talk.textContent = "Stop";
    talk.classList.add("live");
  }

  function stop() {
    stopPlayback();
    if (node) node.disconnect();
    if (stream) stream.getTracks().forEach((t) => t.stop());
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
    if (ctx) ctx.close();
    ws = ctx = stream = node = null;
    talk.textContent = "Start talking";
    talk.classList.remove("live");
  }

  talk.onclick = () => {
    if (ws) stop();
    else start().catch((err) => { status.textContent = "cannot start: " + err.message; stop(); });
  };

  $("ask").onclick = () => {
    const text = $("typed").value.trim();
    if (!text || !ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ type: "text", text }));
    $("typed").value = "";
  };

  $("look").onclick = async () => {
    const file = $("image").files[0];
    if (!file) return;
    const res = await fetch("/api/vision/describe", {
      method: "POST",
      headers: { "Authorization": "Bearer " + keyInput.value.trim(), "Content-Type": file.type || "image/png" },
      body: file,
    });
    const body = await res.json();
    $("vision").textContent = res.ok ? body.summary + "\n\n" + JSON.stringify(body, null, 2) : JSON.stringify(body);
  };
})();
