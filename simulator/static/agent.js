// The agent pane: a fake Chatwoot inbox (simulator/chatwoot.py). It lists the conversations
// the channel opened at handoff, shows the private note with the transcript and the
// citizen's forwarded messages, and answers or resolves as an agent would; the fake then
// posts Chatwoot's own webhooks (message_created, conversation_status_changed) to the bot.
"use strict";

(() => {
  const list = document.getElementById("agent-list");
  const head = document.getElementById("agent-head");
  const messages = document.getElementById("agent-messages");
  const sub = document.getElementById("agent-sub");
  const text = document.getElementById("agent-text");
  const sendButton = document.getElementById("agent-send");
  const resolveButton = document.getElementById("agent-resolve");
  const attachButton = document.getElementById("agent-attach");
  const fileInput = document.getElementById("agent-file");
  let selected = null;
  let conversations = [];
  let lastRendered = "";
  let known = null;

  function escape(value) {
    return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  function node(tag, className, html) {
    const element = document.createElement(tag);
    element.className = className;
    element.innerHTML = html;
    return element;
  }

  function clock(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString("pt-BR", { hour: "2-digit", minute: "2-digit" });
  }

  // A webhook the bot did not take (wrong secret, bot down) is shown on the message.
  function delivery(status) {
    if (status === undefined || status === null || status === 200) return "";
    return ` <span class="agent-warn">⚠ webhook ${status ? "HTTP " + status : "não entregue"}</span>`;
  }

  function attachment(file) {
    const url = escape(file.data_url);
    if (file.file_type === "image") return `<a href="${url}" target="_blank" rel="noopener"><img alt="anexo" src="${url}"></a>`;
    return `📎 <a href="${url}" target="_blank" rel="noopener">${escape(file.file_type)}</a>`;
  }

  function renderMessage(message) {
    const kind = message.private ? "note" : message.message_type;
    const who = message.private ? "🔒 Nota privada" : message.message_type === "incoming" ? "Cidadão" : "Atendente";
    let html = escape(message.content);
    for (const file of message.attachments || []) html += (html ? "\n" : "") + attachment(file);
    const bubble = node("div", `agent-msg ${kind}`, html);
    bubble.appendChild(node("div", "agent-meta", `${who} · ${clock(message.created_at)}${delivery(message.webhook_status)}`));
    return bubble;
  }

  function render() {
    const current = conversations.find((c) => c.id === selected);
    const key = JSON.stringify([selected, conversations]);
    if (key === lastRendered) return;
    lastRendered = key;
    list.innerHTML = "";
    for (const conversation of conversations) {
      const item = node("button", "agent-item" + (conversation.id === selected ? " selected" : ""),
        `<div class="agent-name">${escape(conversation.contact.name || conversation.contact.identifier)}</div>` +
        `<div class="agent-status ${escape(conversation.status)}">#${conversation.id} · ${escape(conversation.status)}</div>`);
      item.dataset.id = conversation.id;
      item.addEventListener("click", () => { selected = conversation.id; render(); });
      list.appendChild(item);
    }
    const open = Boolean(current && current.status !== "resolved");
    for (const control of [text, sendButton, resolveButton, attachButton]) control.disabled = !open;
    if (!current) {
      head.textContent = "Nenhuma conversa selecionada";
      messages.innerHTML = "";
      messages.appendChild(node("div", "agent-empty", "Quando o cidadão pedir um atendente, a conversa aparece aqui."));
      return;
    }
    const contact = current.contact;
    head.innerHTML = `<strong>${escape(contact.name)}</strong> · ${escape(contact.phone_number || contact.identifier)} · ${escape(current.status)}${delivery(current.webhook_status)}`;
    const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
    messages.innerHTML = "";
    for (const message of current.messages) messages.appendChild(renderMessage(message));
    if (atBottom) messages.scrollTop = messages.scrollHeight;
  }

  async function refresh() {
    const response = await fetch("/api/agent/conversations");
    const data = await response.json();
    conversations = data.conversations;
    sub.textContent = data.enabled
      ? `${conversations.filter((c) => c.status !== "resolved").length} em aberto · responda como atendente`
      : "handoff desligado: com `make run` o canal usa este Chatwoot simulado";
    // A conversation opened since the last look is where the agent is needed: show it.
    const opened = known ? conversations.find((c) => !known.has(c.id) && c.status !== "resolved") : null;
    known = new Set(conversations.map((c) => c.id));
    if (opened) selected = opened.id;
    if (!conversations.some((c) => c.id === selected)) {
      const firstOpen = conversations.find((c) => c.status !== "resolved");
      selected = (firstOpen || conversations[0] || { id: null }).id;
    }
    render();
  }

  async function act(action, body) {
    const response = await fetch(`/api/agent/${action}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ conversation_id: selected, ...body }) });
    if (!response.ok) sub.textContent = "⚠ " + ((await response.json()).error || response.status);
    lastRendered = "";
    await refresh();
  }

  function reply() {
    const content = text.value.trim();
    if (!content || selected === null) return;
    text.value = "";
    act("reply", { content });
  }

  sendButton.addEventListener("click", reply);
  text.addEventListener("keydown", (e) => { if (e.key === "Enter") reply(); });
  resolveButton.addEventListener("click", () => act("resolve", {}));
  attachButton.addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    // The simulator keeps the file; Chatwoot's attachment then links to it, as its storage does.
    const upload = await (await fetch("/api/upload", { method: "POST", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file })).json();
    act("reply", { content: text.value.trim(), attachment_url: upload.url, mime: file.type || "application/octet-stream" });
    text.value = "";
    e.target.value = "";
  });
  setInterval(refresh, 1000);
  refresh();
})();
