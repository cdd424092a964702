"""Provider transports: the same messages sent through Meta's Cloud API (``cloud/``) or
Serpro (``serpro/``), behind one small interface (``base.py``); :func:`create_provider`
picks one from the settings. ``media.py`` downloads a user's media for actions.

Owns each provider's HTTP client, request bodies, authentication towards the provider and
(Serpro) webhook registration. Must not import Rasa, and must not decide retries or order
(that is ``outbound/sender.py``).
"""

from __future__ import annotations

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.providers.base import Provider


def create_provider(settings: WhatsAppSettings) -> Provider:
    """The transport for ``settings.provider`` (imported lazily)."""
    if settings.provider == "serpro":
        from bot.addons.whatsapp.providers.serpro.client import SerproProvider

        return SerproProvider.from_settings(settings)
    from bot.addons.whatsapp.providers.cloud.client import CloudProvider

    return CloudProvider.from_settings(settings)
