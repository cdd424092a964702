"""Handoff: a citizen who asks for a person talks to a human agent through Chatwoot.

``client.py`` speaks Chatwoot's Application API (contacts, conversations, messages,
private notes); ``webhook.py`` authenticates and reads Chatwoot's webhooks
(framework-free, like :mod:`~bot.addons.whatsapp.inbound.webhook`); ``state.py`` keeps who
is paused in Rasa's own tracker (``ConversationPaused``/``ConversationResumed``, so it
holds across ``rasa run`` replicas) and who still waits for an agent; ``service.py`` ties
them to the channel's turn runner and sender.

The action server never talks to Chatwoot: ``action_handoff`` only asks for a handoff
(a custom response ``{"handoff": {...}}``), so the Chatwoot token lives in ``rasa run``
alone. Must not import Sanic (the routes stay in ``channel.py``).
"""
