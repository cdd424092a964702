"""Provider transports; :func:`create_provider` picks one from the settings."""

from __future__ import annotations

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.providers.base import Provider


def create_provider(settings: WhatsAppSettings) -> Provider:
    """The transport for ``settings.provider`` (imported lazily)."""
    if settings.provider == "serpro":
        from bot.addons.whatsapp.serpro.provider import SerproProvider

        return SerproProvider.from_settings(settings)
    from bot.addons.whatsapp.providers.cloud import CloudProvider

    return CloudProvider.from_settings(settings)
