// The simulator page: renders a conversation as WhatsApp does and sends the user's actions
// to the simulator's JSON API, which turns each into a signed webhook to the real channel.
"use strict";

const chat = document.getElementById("chat");
const numberInput = document.getElementById("number");
const nameInput = document.getElementById("name");
const textInput = document.getElementById("text");
const sheet = document.getElementById("sheet");
let lastRendered = "";

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// WhatsApp formatting on escaped text: ```mono```, *bold*, _italic_, ~strike~, links.
function formatText(text) {
  let html = escapeHtml(text);
  html = html.replace(/```([\s\S]+?)```/g, "<code>$1</code>");
  html = html.replace(/(^|[\s(])\*(?!\s)([^*\n]+?)\*(?=[\s).,!?:;]|$)/g, "$1<strong>$2</strong>");
  html = html.replace(/(^|[\s(])_(?!\s)([^_\n]+?)_(?=[\s).,!?:;]|$)/g, "$1<em>$2</em>");
  html = html.replace(/(^|[\s(])~(?!\s)([^~\n]+?)~(?=[\s).,!?:;]|$)/g, "$1<s>$2</s>");
  html = html.replace(/(https?:\/\/[^\s<]+)/g, '<a href="$1" target="_blank" rel="noopener">$1</a>');
  return html;
}

function el(tag, className, html) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (html !== undefined) node.innerHTML = html;
  return node;
}

function ticks(item) {
  if (item.status === "failed") return '<span class="ticks failed">!</span>';
  if (item.status === "sent") return '<span class="ticks">✓</span>';
  return `<span class="ticks ${item.status === "read" ? "read" : ""}">✓✓</span>`;
}

function time(item) {
  return new Date(item.time * 1000).toLocaleTimeString("pt-BR", { hour: "2-digit", minute: "2-digit" });
}

// A BSUID (BR.…) stands for a citizen with a username whose phone WhatsApp withholds.
const BSUID = /^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$/;
function citizen() {
  const value = numberInput.value.trim();
  return BSUID.test(value) ? value : value.replace(/\D/g, "");
}

async function send(action) {
  const body = { from: citizen(), name: nameInput.value, ...action };
  if (BSUID.test(body.from)) body.username = "@" + (nameInput.value || "cidadao").toLowerCase().replace(/[^a-z0-9._]/g, "");
  await fetch("/api/send", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  refresh();
}

function renderUser(item) {
  const b = item.body;
  let html = "";
  if (b.type === "text") html = formatText(b.text.body);
  else if (b.type === "interactive") html = escapeHtml((b.interactive.button_reply || b.interactive.list_reply).title);
  else if (b.type === "location") html = `📍 ${b.location.latitude.toFixed(5)}, ${b.location.longitude.toFixed(5)}`;
  else if (b.type === "image") html = `<div class="media"><img alt="imagem enviada" src="/media/${escapeHtml(b.image.id)}"></div>`;
  else if (b.type === "audio") html = `<div class="media"><audio controls aria-label="áudio enviado" src="/media/${escapeHtml(b.audio.id)}"></audio></div>`;
  const bubble = el("div", "bubble user", html);
  bubble.appendChild(el("div", "meta", `${time(item)}${ticks(item)}`));
  if (item.errors.length) bubble.appendChild(el("div", "footer-text", escapeHtml(item.errors.join("; "))));
  return bubble;
}

function interactiveFrame(bubble, inter) {
  if (inter.header && inter.header.type === "text") bubble.appendChild(el("div", "header-text", formatText(inter.header.text)));
  if (inter.header && inter.header.type === "image") bubble.appendChild(el("div", "media", `<img alt="" src="${escapeHtml(inter.header.image.link || "")}">`));
  bubble.appendChild(el("div", "body-text", formatText(inter.body ? inter.body.text : "")));
  if (inter.footer) bubble.appendChild(el("div", "footer-text", formatText(inter.footer.text)));
}

function openList(item) {
  const inter = item.body.interactive;
  document.getElementById("sheet-title").textContent = inter.action.button;
  const body = document.getElementById("sheet-body");
  body.innerHTML = "";
  for (const section of inter.action.sections) {
    if (section.title) body.appendChild(el("div", "section-title", escapeHtml(section.title)));
    for (const row of section.rows) {
      const button = el("button", "row", `<div class="row-title">${escapeHtml(row.title)}</div>` + (row.description ? `<div class="row-desc">${escapeHtml(row.description)}</div>` : ""));
      button.addEventListener("click", () => {
        sheet.hidden = true;
        send({ kind: "list_reply", id: row.id, title: row.title, description: row.description || "", context: item.id });
      });
      body.appendChild(button);
    }
  }
  sheet.hidden = false;
}

function renderBot(item) {
  const b = item.body;
  if (item.errors.length) {
    return el("div", "bubble error", `<strong>⚠ WhatsApp would reject this message</strong>\n${escapeHtml(item.errors.join("\n"))}\n<code>${escapeHtml(JSON.stringify(b).slice(0, 400))}</code>`);
  }
  const bubble = el("div", "bubble bot");
  const type = b.type;
  if (type === "text") bubble.appendChild(el("div", "body-text", formatText(b.text.body)));
  else if (type === "interactive") {
    const inter = b.interactive;
    interactiveFrame(bubble, inter);
    if (inter.type === "button") {
      const box = el("div", "buttons");
      for (const button of inter.action.buttons) {
        const node = el("button", "", "↩ " + escapeHtml(button.reply.title));
        node.addEventListener("click", () => send({ kind: "button_reply", id: button.reply.id, title: button.reply.title, context: item.id }));
        box.appendChild(node);
      }
      bubble.appendChild(box);
    } else if (inter.type === "list") {
      const open = el("button", "list-open", "☰ " + escapeHtml(inter.action.button));
      open.addEventListener("click", () => openList(item));
      bubble.appendChild(open);
    } else if (inter.type === "cta_url") {
      const link = el("a", "cta", "↗ " + escapeHtml(inter.action.parameters.display_text));
      link.href = inter.action.parameters.url;
      link.target = "_blank";
      bubble.appendChild(link);
    } else if (inter.type === "location_request_message") {
      const ask = el("button", "list-open", "📍 Enviar localização");
      ask.addEventListener("click", shareLocation);
      bubble.appendChild(ask);
    } else if (inter.type === "flow") {
      bubble.appendChild(el("div", "list-open", escapeHtml(inter.action.parameters.flow_cta)));
    }
  } else if (["image", "sticker"].includes(type)) {
    const media = b[type];
    bubble.appendChild(el("div", "media", `<img alt="${type}" src="${escapeHtml(media.link || "/media/" + media.id)}">`));
    if (media.caption) bubble.appendChild(el("div", "body-text", formatText(media.caption)));
  } else if (["document", "audio", "video"].includes(type)) {
    const media = b[type];
    const src = escapeHtml(media.link || "/media/" + media.id);
    if (type === "document") bubble.appendChild(el("div", "doc", `<span class="icon-doc">📄</span><a href="${src}" target="_blank">${escapeHtml(media.filename || "documento")}</a>`));
    else bubble.appendChild(el("div", "media", `<${type} controls src="${src}"></${type}>`));
    if (media.caption) bubble.appendChild(el("div", "body-text", formatText(media.caption)));
  } else if (type === "location") {
    const loc = b.location;
    bubble.appendChild(el("div", "location", `📍 <strong>${escapeHtml(loc.name || "Localização")}</strong>\n${escapeHtml(loc.address || "")}\n${escapeHtml(loc.latitude)}, ${escapeHtml(loc.longitude)}`));
  } else if (type === "contacts") {
    for (const contact of b.contacts) bubble.appendChild(el("div", "doc", `👤 ${escapeHtml(contact.name.formatted_name)}`));
  } else if (type === "template") {
    bubble.appendChild(el("div", "template-tag", "template"));
    bubble.appendChild(el("div", "body-text", `<strong>${escapeHtml(b.template.name)}</strong> (${escapeHtml(b.template.language.code)})`));
    const params = (b.template.components || []).flatMap((c) => (c.parameters || []).map((p) => p.text || ""));
    if (params.length) bubble.appendChild(el("div", "footer-text", escapeHtml(params.join(" · "))));
  } else if (type === "reaction") {
    bubble.appendChild(el("div", "body-text", escapeHtml(b.reaction.emoji || "(reação removida)")));
  }
  bubble.appendChild(el("div", "meta", time(item)));
  return bubble;
}

async function refresh() {
  const number = citizen();
  const response = await fetch(`/api/messages?number=${encodeURIComponent(number)}`);
  const data = await response.json();
  const key = JSON.stringify(data);
  if (key === lastRendered) return;
  lastRendered = key;
  const atBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 80;
  chat.innerHTML = "";
  for (const item of data.messages) chat.appendChild(item.direction === "in" ? renderUser(item) : renderBot(item));
  if (data.typing) chat.appendChild(el("div", "typing", "digitando…"));
  document.getElementById("subtitle").textContent = data.typing ? "digitando…" : "conta comercial";
  if (atBottom) chat.scrollTop = chat.scrollHeight;
}

function sendText() {
  const text = textInput.value.trim();
  if (!text) return;
  textInput.value = "";
  send({ kind: "text", text });
}

function shareLocation() {
  send({ kind: "location", latitude: -15.7942, longitude: -47.8822, name: "Praça Central", address: "Praça Central, 100, Nova Aurora" });
}

document.getElementById("send").addEventListener("click", sendText);
textInput.addEventListener("keydown", (e) => { if (e.key === "Enter") sendText(); });
document.getElementById("locate").addEventListener("click", shareLocation);
document.getElementById("attach").addEventListener("click", () => document.getElementById("file").click());
document.getElementById("file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  const content = file ? file : await (await fetch("/static/sample.png")).blob();
  const upload = await (await fetch("/api/upload", { method: "POST", headers: { "Content-Type": content.type || "image/png" }, body: content })).json();
  if ((content.type || "").startsWith("audio/")) send({ kind: "audio", media_id: upload.id, mime_type: content.type });
  else send({ kind: "image", media_id: upload.id, mime_type: content.type || "image/png" });
  e.target.value = "";
});
document.getElementById("sheet-close").addEventListener("click", () => { sheet.hidden = true; });
numberInput.addEventListener("change", () => { lastRendered = ""; refresh(); });
setInterval(refresh, 700);
refresh();
