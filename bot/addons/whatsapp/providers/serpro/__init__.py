"""Serpro, the accredited WhatsApp broker of the Brazilian government: OAuth2 token
(``auth.py``), request bodies (``bodies.py``, pure functions), the transport
(``client.py``) and webhook registration (``registration.py``, ``python -m
bot.addons.whatsapp.providers.serpro``)."""
