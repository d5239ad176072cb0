"""What the client needs from a token provider (its own module, so client and tokens do not
import each other)."""

from __future__ import annotations

from typing import Protocol


class TokenSource(Protocol):
    """What :class:`~collector.http.client.ApiClient` asks for an ``Authorization: Bearer``."""

    async def token(self) -> str: ...

    def invalidate(self, token: str) -> None:
        """The API refused ``token`` (401): fetch a new one next time."""
        ...
