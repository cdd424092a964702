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
