"""Acknowledged messages waiting for the relay, fair across senders.

One FIFO per sender; a batch takes the senders' heads round by round (every waiting
sender's oldest message, then every sender's second, …), so a citizen who writes once is
relayed in the first round of the next batch however many messages a flooding number has
queued, while each sender's own messages keep their order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Per-key FIFOs read round-robin. Not thread-safe (one event loop)."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[T]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def count(self, key: str) -> int:
        queue = self._queues.get(key)
        return len(queue) if queue is not None else 0

    def push(self, key: str, item: T) -> None:
        self._queues.setdefault(key, deque()).append(item)
        self._size += 1

    def rounds(self) -> Iterator[tuple[str, T]]:
        """Every item, round by round: each key's first, then each key's second, …"""
        depth = 0
        while True:
            found = False
            for key, queue in list(self._queues.items()):
                if depth < len(queue):
                    found = True
                    yield key, queue[depth]
            if not found:
                return
            depth += 1

    def drop_heads(self, key: str, count: int = 1) -> None:
        """Remove the ``count`` oldest items of ``key`` (taken, or set aside)."""
        queue = self._queues[key]
        for _ in range(count):
            queue.popleft()
            self._size -= 1
        if not queue:
            del self._queues[key]
