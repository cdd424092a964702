// Voice notes in the simulator: under each voice note the citizen sent, what the bot heard
// (the transcript it used, its confidence, or why it could not hear it), as Rasa recorded
// it (GET /api/transcripts reads the tracker). app.js redraws the chat; this only adds a
// line to each voice-note bubble after it does.
"use strict";

(() => {
  const chat = document.getElementById("chat");
  const numberInput = document.getElementById("number");
  const BSUID = /^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$/;
  const PROBLEMS = {
    too_long: "áudio longo demais",
    undecodable: "arquivo de áudio ilegível",
    no_speech: "nenhuma fala reconhecida",
    unavailable: "transcrição indisponível",
    timeout: "a transcrição demorou demais",
  };
  let heard = {};

  function citizen() {
    const value = numberInput.value.trim();
    return BSUID.test(value) ? value : value.replace(/\D/g, "");
  }

  function line(entry) {
    if (entry.text) {
      const sure = entry.confidence === null ? "" : ` (confiança ${Math.round(entry.confidence * 100)}%)`;
      return `🎤 O bot entendeu: “${entry.text}”${sure}`;
    }
    return `🎤 O bot não entendeu: ${PROBLEMS[entry.problem] || entry.problem || "sem transcrição"}`;
  }

  function annotate() {
    for (const audio of chat.querySelectorAll(".bubble.user audio[src^='/media/']")) {
      const id = decodeURIComponent(audio.getAttribute("src").slice("/media/".length));
      const entry = heard[id];
      const bubble = audio.closest(".bubble");
      const shown = bubble.querySelector(".transcript");
      const text = entry ? line(entry) : null;
      if (shown && shown.textContent === text) continue;
      if (shown) shown.remove();
      if (!text) continue;
      const node = document.createElement("div");
      node.className = "transcript";
      node.style.cssText = "font-size: 12px; color: #54656f; font-style: italic; margin-top: 4px;";
      node.textContent = text;
      audio.closest(".media").after(node);
    }
  }

  async function poll() {
    if (!chat.querySelector(".bubble.user audio")) return;
    const number = citizen();
    if (!number) return;
    try {
      const answer = await fetch(`/api/transcripts?number=${encodeURIComponent(number)}`);
      if (!answer.ok) return;
      const data = await answer.json();
      if (number === citizen()) heard = data.transcripts || {};
    } catch (error) {
      return; // the next poll tries again
    }
    annotate();
  }

  new MutationObserver(annotate).observe(chat, { childList: true });
  numberInput.addEventListener("change", () => { heard = {}; });
  setInterval(poll, 1500);
})();

// Recording a voice note with the microphone, as WhatsApp's 🎤 does: a press starts, a
// second press stops and sends. The browser records what it can (Chromium: WebM/Opus;
// OGG/Opus is asked for first, where supported); POST /api/record stores it re-encoded as
// WhatsApp delivers voice notes (OGG/Opus, mono) and the page sends it with voice: true
// through app.js's send(), like any other message.
(() => {
  const mic = document.getElementById("record");
  const textInput = document.getElementById("text");
  const TYPES = ["audio/ogg;codecs=opus", "audio/webm;codecs=opus", "audio/webm"];
  const placeholder = textInput.placeholder;
  let recorder = null;
  let opening = false; // between the first press and the microphone answering
  let clock = null;

  function say(text) {
    textInput.placeholder = text || placeholder;
  }

  function recordingType() {
    return TYPES.find((type) => MediaRecorder.isTypeSupported(type)) || "";
  }

  function idle() {
    clearInterval(clock);
    mic.textContent = "🎤";
    mic.style.color = "";
    mic.setAttribute("aria-pressed", "false");
  }

  async function store(blob) {
    const type = (blob.type || "audio/webm").split(";")[0];
    const answer = await fetch("/api/record", { method: "POST", headers: { "Content-Type": type }, body: blob });
    const stored = await answer.json();
    if (!answer.ok) throw new Error(stored.error || `HTTP ${answer.status}`);
    return stored;
  }

  async function start() {
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      say("Este navegador não grava áudio aqui (use http://localhost)");
      return;
    }
    let stream;
    opening = true;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
    } catch (error) {
      say(`Microfone indisponível: ${error.name}`);
      return;
    } finally {
      opening = false;
    }
    const type = recordingType();
    const chunks = [];
    const began = Date.now();
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    recorder.addEventListener("dataavailable", (event) => { if (event.data.size) chunks.push(event.data); });
    recorder.addEventListener("stop", async () => {
      const recorded = new Blob(chunks, { type: recorder.mimeType });
      recorder = null;
      for (const track of stream.getTracks()) track.stop();
      idle();
      say("Enviando a mensagem de voz…");
      try {
        const stored = await store(recorded);
        say("");
        await send({ kind: "audio", media_id: stored.id, mime_type: stored.mime_type, voice: true });
      } catch (error) {
        say(`Não foi possível enviar a gravação: ${error.message}`);
      }
    });
    recorder.start();
    mic.textContent = "⏹";
    mic.style.color = "#d93025";
    mic.setAttribute("aria-pressed", "true");
    const tick = () => {
      const seconds = Math.floor((Date.now() - began) / 1000);
      say(`Gravando… ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")} (toque ⏹ para enviar)`);
    };
    tick();
    clock = setInterval(tick, 500);
  }

  mic.addEventListener("click", () => {
    if (recorder) recorder.stop();
    else if (!opening) start();
  });
})();
