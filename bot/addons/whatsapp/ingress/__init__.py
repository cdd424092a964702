"""The webhook ingress: ``python -m bot.addons.whatsapp.ingress``.

A small aiohttp process in front of ``rasa run`` that acks the provider's webhook in
milliseconds (``app.py``, with the same request path as the channel:
:mod:`bot.addons.whatsapp.inbound.webhook`) and relays what it acknowledged to ``rasa
run`` in order (``relay.py``).

Must never import Rasa or Sanic (directly or through another module): it is the one
process the internet reaches and it stays small.
"""
