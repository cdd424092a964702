"""Inbound: what WhatsApp posts ▸ what Rasa receives.

Owns the webhook's request path (``webhook.py``: size ▸ signature ▸ parse ▸ dedup ▸
sink), webhook authentication (``signature.py``), the typed events and their JSON codec
(``events.py``), webhook JSON ▸ events (``parse.py``; fields other than ``messages`` in
``fields.py``), what each event changes and which messages are answered (``triage.py``),
one conversation per citizen whatever identifiers arrive (``identity.py``), thread
ownership, preferences and template statuses (``routing.py``) and an event ▸ the text
and metadata of a Rasa ``UserMessage`` (``to_rasa.py``, with the intent names of
``intents.py``).

Must not import Rasa, Sanic or aiohttp: the same code serves the channel inside
``rasa run`` and the ingress process, which does not load Rasa.
"""
