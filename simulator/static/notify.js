// The notification trigger: asks the running bot (through the simulator's /api/notify relay,
// which holds WPP_NOTIFY_TOKEN) to notify the number shown in the phone, then follows the
// notification's status as the bot records it from the status webhooks: ✓ sent ▸ ✓✓
// delivered ▸ blue ✓✓ read, or ! failed with WhatsApp's code. The message itself arrives in
// the chat like any other the bot sends.
"use strict";

(function () {
  const STATUS_TEXT = { sent: "enviada", delivered: "entregue", read: "lida", failed: "falhou" };
  const FINAL = new Set(["read", "failed"]);

  function node(tag, attrs, text) {
    const element = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) element.setAttribute(key, value);
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function recipient() {
    const value = document.getElementById("number").value.trim();
    return /^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$/.test(value) ? value : value.replace(/\D/g, "");
  }

  function ticks(status) {
    if (status === "failed") return "!";
    return status === "sent" ? "✓" : "✓✓";
  }

  const panel = node("aside", { id: "notify-panel", class: "notify-panel", "aria-label": "notification trigger" });
  panel.innerHTML = `
    <h2>Notificar este número</h2>
    <p class="notify-hint">Como um sistema da prefeitura: o bot envia pela API de notificações.</p>
    <label>Tipo
      <select id="notify-kind" aria-label="notification kind">
        <option value="template">template aprovado</option>
        <option value="response">resposta do domínio (só na janela de 24 h)</option>
      </select>
    </label>
    <div id="notify-template-fields">
      <label>Template <input id="notify-template" list="notify-templates" value="lembrete_iptu" aria-label="template name"></label>
      <datalist id="notify-templates"></datalist>
      <label>Idioma <input id="notify-language" value="pt_BR" aria-label="template language"></label>
      <label>Parâmetros (um por linha) <textarea id="notify-params" rows="2" aria-label="template parameters">10/03</textarea></label>
    </div>
    <div id="notify-response-fields" hidden>
      <label>Resposta <select id="notify-response" aria-label="domain response"></select></label>
      <label>Slots (nome=valor, um por linha) <textarea id="notify-slots" rows="2" aria-label="slots"></textarea></label>
    </div>
    <button id="notify-send" class="notify-send">🔔 Enviar notificação</button>
    <div id="notify-error" class="notify-error" role="alert"></div>
    <ol id="notify-list" class="notify-list"></ol>`;
  document.body.appendChild(panel);

  const kind = document.getElementById("notify-kind");
  const errorBox = document.getElementById("notify-error");
  const templatesByResponse = {};

  kind.addEventListener("change", () => {
    document.getElementById("notify-template-fields").hidden = kind.value !== "template";
    document.getElementById("notify-response-fields").hidden = kind.value !== "response";
  });

  async function loadOptions() {
    const options = await (await fetch("/api/notify/options")).json();
    if (!options.enabled) errorBox.textContent = "Desligado: defina WPP_NOTIFY_TOKEN para o bot e o simulador (make run define).";
    const list = document.getElementById("notify-templates");
    for (const template of options.templates) {
      templatesByResponse[template.response] = template;
      list.appendChild(node("option", { value: template.name }, `${template.response} (${template.language})`));
    }
    const select = document.getElementById("notify-response");
    for (const name of options.responses) {
      const template = templatesByResponse[name];
      select.appendChild(node("option", { value: name }, template ? `${name} — template ${template.name}` : name));
    }
  }

  function request() {
    const body = { recipient: recipient() };
    if (kind.value === "template") {
      const params = document.getElementById("notify-params").value.split("\n").map((p) => p.trim()).filter(Boolean);
      body.template = { name: document.getElementById("notify-template").value.trim(), language: document.getElementById("notify-language").value.trim(), params };
    } else {
      body.response = document.getElementById("notify-response").value;
      body.slots = {};
      for (const line of document.getElementById("notify-slots").value.split("\n")) {
        const at = line.indexOf("=");
        if (at > 0) body.slots[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      }
    }
    return body;
  }

  function show(entry, record) {
    const status = record.status;
    const history = entry.dataset.history ? entry.dataset.history.split(" ") : [];
    if (history[history.length - 1] !== status) history.push(status);
    entry.dataset.history = history.join(" ");
    entry.dataset.status = status;
    const mark = entry.querySelector(".notify-ticks");
    mark.textContent = ticks(status);
    mark.className = `notify-ticks ticks ${status === "read" ? "read" : ""} ${status === "failed" ? "failed" : ""}`;
    const error = record.error ? ` (${record.error.code} ${record.error.title || ""})` : "";
    entry.querySelector(".notify-state").textContent = (STATUS_TEXT[status] || status) + error;
  }

  async function follow(entry, id) {
    while (!FINAL.has(entry.dataset.status)) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      const answer = await fetch(`/api/notify/${encodeURIComponent(id)}`);
      if (answer.ok) show(entry, await answer.json());
    }
  }

  async function trigger() {
    errorBox.textContent = "";
    const body = request();
    const answer = await fetch("/api/notify", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const result = await answer.json();
    if (!answer.ok) {
      errorBox.textContent = `HTTP ${answer.status}: ${result.error}${result.detail ? " — " + result.detail : ""}`;
      return;
    }
    const label = body.template ? body.template.name : body.response;
    const entry = node("li", { class: "notify-entry", "data-id": result.id });
    entry.appendChild(node("span", { class: "notify-what" }, `${label} → ${body.recipient}`));
    entry.appendChild(node("span", { class: "notify-state" }));
    entry.appendChild(node("span", { class: "notify-ticks ticks" }));
    document.getElementById("notify-list").prepend(entry);
    show(entry, result);
    if (result.status !== "failed") follow(entry, result.id);
  }

  document.getElementById("notify-send").addEventListener("click", trigger);
  loadOptions();
})();
