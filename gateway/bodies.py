"""Streaming request bodies from ASGI ``receive`` without buffering them.

The proxy hands ``RequestBody.stream()`` to the upstream client. It records
whether any byte was pulled (after that a retry on another target is
impossible: the body cannot be replayed) and how many bytes passed, and it
stops with ``ClientDisconnected`` when the client goes away mid-upload.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class ClientDisconnected(Exception):
    """The client closed the connection before the request body was complete."""


class RequestBody:
    __slots__ = ("_receive", "bytes_received", "done", "started")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.started = False
        self.done = False
        self.bytes_received = 0

    async def stream(self) -> AsyncIterator[bytes]:
        self.started = True
        while not self.done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            if not message.get("more_body", False):
                self.done = True
            if chunk:
                self.bytes_received += len(chunk)
                yield chunk

    async def drain(self) -> None:
        """Read and drop what is left (before answering an error while the client still sends)."""
        if self.done:
            return
        async for _ in self.stream():
            pass


async def limited(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """Pass ``stream`` through, raising ``BodyTooLarge`` as soon as more than ``limit`` bytes went by.

    The check is on bytes counted while streaming, so a chunked upload without
    a Content-Length is stopped at the limit instead of after buffering it.
    The exception escapes the upstream client unchanged (see its contract),
    so the proxy answers 413 and the upstream request is abandoned.
    """
    from policies.context import BodyTooLarge

    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise BodyTooLarge(limit)
        yield chunk
