"""WhatsApp channel for Rasa: Meta's Cloud API or Serpro, one channel class.

Register ``bot.addons.whatsapp.WhatsAppInput`` in ``credentials.yml``. The class is
imported on first use, so the webhook ingress (``python -m bot.addons.whatsapp.ingress``)
loads this package without loading Rasa.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.addons.whatsapp.channel import WhatsAppInput

__all__ = ["WhatsAppInput"]


def __getattr__(name: str) -> Any:
    if name == "WhatsAppInput":
        from bot.addons.whatsapp.channel import WhatsAppInput

        return WhatsAppInput
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
