"""``python -m bot.addons.whatsapp.ingress``: the webhook ingress in front of ``rasa run``."""

import sys

from bot.addons.whatsapp.ingress.app import main

sys.exit(main())
