"""Delivery: an acknowledged message is answered once, in order, even if a process dies.

Owns deduplication by ``wamid`` (``dedup.py``), the journal of acknowledged messages from
claim to finish (``journal.py``: the Lua scripts, take-over, adoption, sent counts,
claims whose outcome is unknown; ``progress.py``: the turn's side, the skip of replies
already delivered and the check that a turn is still this process's; ``lease.py``: the
one lease loop, and the hand-over of adopted messages), the per-sender FIFO queue
(``sender_queue.py``), one message's turn (``turn.py``) and the thread Rasa's turns run
on (``turn_thread.py``).

Must not import Sanic or aiohttp (the web frameworks stay in ``channel.py`` and
``ingress/``); only ``turn.py`` touches Rasa, and only its ``UserMessage``.
"""
