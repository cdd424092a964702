"""WhatsApp Cloud API limits, in one place, each with its source.

Source tags refer to Meta's pages as listed in ``tests/data/whatsapp/SOURCES.md``
(copied from the project's WhatsApp reference): M-ref-old is the pre-2025 Cloud API
reference tables, M-buttons / M-list the interactive message pages, M-msgs-v23 the
v23-era "Messages" pages, M-overview / M-throughput the rate-limit pages. Where Meta's
own pages disagree the safe (smaller) value is used and the disagreement is noted.
"""

from __future__ import annotations

from typing import Final

# --- Text ------------------------------------------------------------------
TEXT_BODY_MAX: Final = 4096
"""Text message ``body`` (M-ref-old Text object; M-text-messages). One v23-era copy says 1024;
every other Meta page says 4096."""

# --- Interactive -----------------------------------------------------------
INTERACTIVE_BODY_MAX: Final = 1024
"""Interactive ``body.text``: buttons, CTA URL, location request, flows (M-buttons, M-ref-old)."""
LIST_BODY_MAX: Final = 1024
"""List ``body.text``: 1024 per M-ref-old, 4096 per the current M-list page; 1024 is safe."""
HEADER_TEXT_MAX: Final = 60
"""Interactive ``header.text`` (M-ref-old Header object; M-list)."""
FOOTER_TEXT_MAX: Final = 60
"""Interactive ``footer.text`` (M-ref-old; M-buttons; M-list)."""

REPLY_BUTTONS_MAX: Final = 3
"""Reply buttons per message (M-buttons; M-ref-old Action object)."""
REPLY_BUTTON_TITLE_MAX: Final = 20
"""Reply button ``title``: non-empty, unique (M-buttons)."""
REPLY_BUTTON_ID_MAX: Final = 256
"""Reply button ``id``: unique, no leading/trailing spaces (M-buttons; M-ref-old)."""

LIST_BUTTON_LABEL_MAX: Final = 20
"""List ``action.button`` label, non-empty (M-list; M-ref-old)."""
LIST_SECTIONS_MAX: Final = 10
"""Sections per list (M-list; M-ref-old Section object)."""
LIST_SECTION_TITLE_MAX: Final = 24
"""Section ``title``; required when a list has more than one section (M-list)."""
LIST_ROWS_MAX: Final = 10
"""Rows in total across all sections of one list (M-list: "up to 10 rows for all sections
combined"). Some libraries check 10 per section; that is wrong."""
LIST_ROW_TITLE_MAX: Final = 24
"""Row ``title`` (M-list; M-ref-old)."""
LIST_ROW_DESCRIPTION_MAX: Final = 72
"""Row ``description``, optional (M-list; M-ref-old)."""
LIST_ROW_ID_MAX: Final = 200
"""Row ``id`` (M-ref-old Row object)."""

CTA_URL_DISPLAY_TEXT_MAX: Final = 20
"""CTA URL ``display_text`` (M-msgs-v23 CTA URL)."""
FLOW_CTA_MAX: Final = 20
"""Flow ``flow_cta``: "advised to be 30 characters or less" (M-ref-old), 20 per other
implementations; 20 is safe."""

# --- Media -----------------------------------------------------------------
MEDIA_CAPTION_MAX: Final = 1024
"""Caption on image, video and document (M-msgs-v23). Not allowed on audio or sticker."""
CAPTION_MEDIA_TYPES: Final = frozenset({"image", "video", "document"})
"""Media types that accept a caption (M-ref-old Media object)."""
MEDIA_TYPES: Final = frozenset({"image", "video", "audio", "document", "sticker"})

# --- Misc ------------------------------------------------------------------
BIZ_OPAQUE_CALLBACK_DATA_MAX: Final = 512
"""``biz_opaque_callback_data`` (M-ref-old)."""
TEMPLATE_BUTTON_INDEX_MAX: Final = 9
"""Template button ``index`` is 0-9 (M-ref-old Components object)."""
TEMPLATE_HEADER_PARAM_MAX: Final = 60
"""Template header text parameter (M-ref-old Parameter object)."""

# --- Webhooks --------------------------------------------------------------
WEBHOOK_BODY_MAX_BYTES: Final = 3 * 1024 * 1024
"""Webhook bodies up to 3 MB are accepted: Meta documents payloads up to 3 MB (M-webhooks;
LIMITS.md §5), read here as the larger 3 MiB. Real message batches are a few kB; bigger
bodies get 413 ``body_too_large``."""
REQUEST_BODY_MAX_BYTES: Final = 2 * WEBHOOK_BODY_MAX_BYTES
"""Any request body to ``rasa run`` (Sanic's ``REQUEST_MAX_SIZE``, 100 MB by default) or to
the ingress (aiohttp's ``client_max_size``): a larger one is refused with 413 on its
``Content-Length``, unread. Twice the webhook's, so an oversize webhook still gets the
channel's own 413 with its size logged, and a relay batch fits (the relay keeps its
requests under it)."""

# --- Throughput ------------------------------------------------------------
MESSAGES_PER_SECOND_DEFAULT: Final = 80
"""Per business number, inbound + outbound (M-throughput). 1,000/s on the upgraded tier."""
PAIR_RATE_SECONDS: Final = 6.0
"""Same business number to the same user: 1 message per 6 s, bursts of up to 45 borrow future
quota (M-overview). Retry after 4**X seconds on error 131056."""
DAILY_RECIPIENTS_DEFAULT: Final = 250
"""Business-initiated messaging limit: unique users outside a service window per rolling 24 h
per business portfolio; tiers 250 → 2,000 → 10,000 → 100,000 → unlimited (M-limits)."""
SERVICE_WINDOW_SECONDS: Final = 24 * 3600
"""After a citizen's last message any message may be sent for 24 h; afterwards only an
approved template (131047 otherwise; M-send)."""
TYPING_INDICATOR_SECONDS: Final = 25
"""A typing indicator is dismissed on reply or after 25 s (M-typing)."""
