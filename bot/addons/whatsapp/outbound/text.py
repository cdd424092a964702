"""Text within WhatsApp's limits: cut with "…", split on paragraphs, sentences, words.

Pure functions. A text over the body limit (``limits.TEXT_BODY_MAX``) becomes several
``Text`` messages, in order; titles and labels are cut, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.addons.whatsapp import limits
from bot.addons.whatsapp.outbound.messages import OutMessage, Text

ELLIPSIS = "…"
URL_RE = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)
SENTENCE_END_RE = re.compile(r"(?<=[.!?…])\s+")


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, ending in "…" when it had to be cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def split_text(text: str, limit: int = limits.TEXT_BODY_MAX) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters, in order.

    Paragraphs are kept whole when they fit, then sentences, then words; a word is cut
    only when it alone is longer than ``limit``.
    """
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    chunks: list[str] = []
    current = ""
    for piece, joiner in _pieces(text, limit):
        candidate = f"{current}{joiner}{piece}" if current else piece
        if len(candidate) <= limit:
            current = candidate
        else:
            if current:
                chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks


def _pieces(text: str, limit: int) -> Iterable[tuple[str, str]]:
    """Paragraphs, or the sentences / words / hard cuts of those too long, with joiners."""
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= limit:
            yield paragraph, "\n\n"
            continue
        first = True
        for sentence in SENTENCE_END_RE.split(paragraph):
            joiner = "\n\n" if first else " "
            first = False
            if len(sentence) <= limit:
                yield sentence, joiner
                continue
            for word in sentence.split(" "):
                while len(word) > limit:
                    yield word[:limit], joiner
                    word, joiner = word[limit:], ""
                if word:
                    yield word, joiner
                joiner = " "


def texts(text: str, preview_urls: bool) -> list[OutMessage]:
    """``text`` as text messages; a link preview is asked for where a chunk holds a URL."""
    return [
        Text(chunk, preview_url=preview_urls and bool(URL_RE.search(chunk)))
        for chunk in split_text(text)
    ]
