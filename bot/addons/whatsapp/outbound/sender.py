"""Sending a turn's messages: in order per recipient, rate-limited, retried with backoff."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

from bot.addons.whatsapp.config import WhatsAppSettings
from bot.addons.whatsapp.errors import PAIR_RATE_CODE, WhatsAppApiError
from bot.addons.whatsapp.inbound.identity import Contact
from bot.addons.whatsapp.inbound.routing import ChannelState, create_state
from bot.addons.whatsapp.logs import mask_id
from bot.addons.whatsapp.metrics import Metrics
from bot.addons.whatsapp.outbound.messages import Custom, OutMessage
from bot.addons.whatsapp.outbound.ratelimit import RateLimiter
from bot.addons.whatsapp.providers.base import Provider

logger = logging.getLogger(__name__)


def backoff_delay(
    error: WhatsAppApiError,
    attempt: int,
    base: float = 1.0,
    cap: float = 60.0,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based) after ``error``.

    ``Retry-After`` wins when given; the pair-rate limit (131056) waits 4^attempt s as Meta
    advises; otherwise exponential backoff ``base * 2^attempt`` with full jitter in its upper
    half, so many senders do not retry in lockstep.
    """
    if error.retry_after is not None:
        return min(cap, error.retry_after)
    if error.code == PAIR_RATE_CODE:
        return min(cap, 4.0**attempt)
    ceiling = min(cap, base * 2.0**attempt)
    return ceiling / 2 + jitter() * ceiling / 2


class Sender:
    """Sends messages through a provider, strictly in order per recipient.

    Args:
        provider: the transport.
        rate_per_second: the business number's throughput budget (shared by all sends).
        max_retries: retries per message on retryable errors (network, 429, 5xx, throttling).
        reengagement_template: when a send fails because the 24-hour window is closed
            (131047), this approved template (name) is sent instead, once per turn.
        reengagement_language: the template's language code.
        metrics: counters to update (sent, retries, failures by code).
        sleep: the sleep coroutine (tests pass a recorder).
        state: the identity map (``send_all`` takes a conversation key and sends to the
            phone when known, else to the BSUID) and the template statuses.
    """

    def __init__(
        self,
        provider: Provider,
        rate_per_second: float = 80.0,
        max_retries: int = 8,
        reengagement_template: str = "",
        reengagement_language: str = "pt_BR",
        metrics: Metrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        base_delay: float = 1.0,
        state: ChannelState | None = None,
    ) -> None:
        self.provider = provider
        self.state = state or create_state("")
        self._limiter = RateLimiter(rate_per_second, sleep=sleep)
        self._max_retries = max_retries
        self._template = reengagement_template
        self._language = reengagement_language
        self.metrics = metrics or Metrics()
        self._sleep = sleep
        self._base_delay = base_delay
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self.reengagement_failures = 0
        self.bsuid_undeliverable = 0  # 131062 with no phone to fall back to

    @classmethod
    def from_settings(
        cls,
        provider: Provider,
        settings: WhatsAppSettings,
        metrics: Metrics | None = None,
        state: ChannelState | None = None,
    ) -> Sender:
        return cls(
            provider,
            state=state,
            rate_per_second=settings.send_rate_per_second,
            max_retries=settings.max_retries,
            reengagement_template=settings.reengagement_template,
            reengagement_language=settings.reengagement_language,
            metrics=metrics,
        )

    async def start(self) -> None:
        await self.provider.start()

    async def close(self) -> None:
        await self.provider.close()

    async def send_all(self, to: str, messages: Sequence[OutMessage]) -> list[str | None]:
        """Send ``messages`` to ``to`` in order; concurrent calls for one recipient queue up.

        ``to`` is a conversation key (Rasa's ``sender_id``): the identity map gives the
        address, the phone when one is known, else the BSUID.

        A message that fails for good is logged and skipped; the rest still go out. When
        the 24-hour window is closed nothing more can be sent this turn, so the
        re-engagement template (if configured) is sent instead and the turn ends.

        Returns:
            The provider's id of each message (None where it failed).
        """
        lock, users = self._locks.get(to) or (asyncio.Lock(), 0)
        self._locks[to] = (lock, users + 1)
        ids: list[str | None] = []
        try:
            async with lock:
                contact = await self._contact(to)
                address = contact.address
                for message in messages:
                    try:
                        ids.append(await self._send_to(contact, address, message))
                    except WhatsAppApiError as error:
                        ids.append(None)
                        if error.reengagement:
                            await self._reengage(address, error)
                            ids.extend([None] * (len(messages) - len(ids)))
                            break
        finally:
            lock, users = self._locks[to]
            if users <= 1:
                del self._locks[to]
            else:
                self._locks[to] = (lock, users - 1)
        return ids

    async def _contact(self, key: str) -> Contact:
        try:
            return await self.state.identities.contact(key)
        except Exception as exc:  # Redis unreachable: the key itself is an address
            logger.warning("Could not read the identity map for %s: %r", mask_id(key), exc)
            return Contact(key)

    async def _send_to(self, contact: Contact, address: str, message: OutMessage) -> str | None:
        """One message; a 131062 (not deliverable to a BSUID) goes again to the phone."""
        try:
            return await self.send_one(address, message)
        except WhatsAppApiError as error:
            if not error.bsuid_unsupported:
                raise
            if contact.phone and contact.phone != address:
                logger.info(
                    "%s cannot go to a BSUID (131062); sending it to %s's phone",
                    type(message).__name__,
                    mask_id(address),
                )
                return await self.send_one(contact.phone, message)
            self.bsuid_undeliverable += 1
            logger.error(
                "%s cannot be sent to %s: WhatsApp does not deliver it to a business-scoped "
                "user id (131062) and no phone is known for this citizen",
                type(message).__name__,
                mask_id(address),
            )
            raise

    async def send_one(self, to: str, message: OutMessage) -> str | None:
        """Send one message with retries; raises the last error when it fails for good."""
        attempt = 0
        while True:
            await self._limiter.acquire()
            try:
                message_id = await self.provider.send(to, message)
            except WhatsAppApiError as error:
                if error.retryable and attempt < self._max_retries:
                    delay = backoff_delay(error, attempt, self._base_delay)
                    self.metrics.send_retries += 1
                    logger.warning(
                        "Send to %s failed (%s, HTTP %s); retry %d/%d in %.1fs",
                        mask_id(to),
                        error.code,
                        error.http_status,
                        attempt + 1,
                        self._max_retries,
                        delay,
                    )
                    await self._sleep(delay)
                    attempt += 1
                    continue
                self._log_failure(to, error)
                raise
            self.metrics.messages_sent += 1
            logger.debug("Sent %s to %s (id %s)", type(message).__name__, mask_id(to), message_id)
            return message_id

    def _log_failure(self, to: str, error: WhatsAppApiError) -> None:
        self.metrics.failure(error.code if error.code else f"http_{error.http_status}")
        if error.reengagement:
            logger.warning(
                "Cannot message %s: more than 24 hours since their last message (131047); "
                "only an approved template can be sent. trace=%s",
                mask_id(to),
                error.trace_id,
            )
            return
        decision = error.decision
        logger.error(
            "Send to %s failed for good%s: code=%s subcode=%s http=%s message=%r details=%r "
            "trace=%s",
            mask_id(to),
            f" ({'configuration error: ' if decision.configuration else ''}{decision.meaning})"
            if decision
            else "",
            error.code,
            error.subcode,
            error.http_status,
            error.message,
            error.details,
            error.trace_id,
        )

    async def _reengage(self, to: str, error: WhatsAppApiError) -> None:
        self.reengagement_failures += 1
        if not self._template:
            return
        try:
            usable = await self.state.routing.template_usable(self._template)
        except Exception as exc:
            logger.warning("Could not read the template status: %r", exc)
            usable = True
        if not usable:
            logger.warning(
                "Re-engagement template %r is paused or disabled by Meta: not sent to %s "
                "until it is approved again",
                self._template,
                mask_id(to),
            )
            return
        template = Custom(
            {
                "type": "template",
                "template": {"name": self._template, "language": {"code": self._language}},
            }
        )
        try:
            await self.send_one(to, template)
            logger.info("Sent re-engagement template %r to %s", self._template, mask_id(to))
        except WhatsAppApiError:
            pass  # already logged by send_one
