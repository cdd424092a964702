"""WhatsApp channel for Rasa: Meta's Cloud API or Serpro, one channel class.

Register ``bot.addons.whatsapp.WhatsAppInput`` in ``credentials.yml``.
"""

from bot.addons.whatsapp.channel import WhatsAppInput

__all__ = ["WhatsAppInput"]
