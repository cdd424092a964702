"""Proactive messages: notifications from other systems and consented campaigns.

``schema.py`` and ``store.py`` keep notifications, campaigns, per-recipient outcomes,
delivery statuses and opt-outs in a SQL database (SQLite by default, PostgreSQL by
``WPP_PROACTIVE_DB_URL``); ``deliveries.py`` records statuses and Meta's opt-outs from
webhooks; ``consent.py`` reads stop words; ``request.py`` and ``notify.py`` serve
``POST /webhooks/whatsapp/notify`` (routes added to the channel's blueprint: no Sanic
import here); ``campaign.py`` is the ``python -m bot.addons.whatsapp.proactive.campaign``
command and ``throttle.py`` the limits every process shares on Redis.
Operators: docs/operators/notifications.md.
"""
