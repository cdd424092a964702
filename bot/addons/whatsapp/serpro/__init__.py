"""Serpro, the accredited WhatsApp broker of the Brazilian government: OAuth2 client,
send endpoints, and webhook registration (``python -m bot.addons.whatsapp.serpro``)."""
