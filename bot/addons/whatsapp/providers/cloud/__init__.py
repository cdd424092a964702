"""Meta's WhatsApp Cloud API: the Graph API transport (``client.py``) and its request
bodies (``bodies.py``, pure functions)."""
