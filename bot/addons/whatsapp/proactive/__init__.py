"""Proactive messages: notifications from other systems and consented campaigns.

``store.py`` keeps notifications, campaigns, per-recipient outcomes, delivery statuses and
opt-outs in a SQL database (SQLite by default, PostgreSQL by ``WPP_PROACTIVE_DB_URL``);
``consent.py`` reads stop words and Meta's opt-out signals; ``notify.py`` serves
``POST /webhooks/whatsapp/notify`` (the routes stay in ``channel.py``); ``campaign.py``
is the ``python -m bot.addons.whatsapp.proactive.campaign`` command; ``throttle.py`` holds
the limits every process shares on Redis. Operators: docs/operators/notifications.md.
"""
