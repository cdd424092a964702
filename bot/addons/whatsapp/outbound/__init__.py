"""Outbound: a Rasa response ▸ WhatsApp messages ▸ sent in order.

Owns the internal model of an outgoing message (``messages.py``), the pure conversion of
a response (``convert.py``, with its parts: ``text.py`` splits and cuts text,
``choices.py`` turns buttons into reply buttons and lists, ``media.py`` images and
attachments, ``custom.py`` validated pass-through bodies), short keys for over-long
button ids (``short_keys.py``), and sending (``sender.py``: order, retries, pacing with
``ratelimit.py``).

Must not import Rasa or a web framework; provider request bodies live in
``providers/``.
"""
