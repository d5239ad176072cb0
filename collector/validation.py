"""Pydantic validation messages, made readable for people.

Pydantic prefixes what a validator raised with the exception's kind ("Value error, unsupported
database …", "Assertion failed, …"): noise for the reader of a config error or a 422. Every place
that turns a ``ValidationError`` into lines for people calls :func:`clean_message`.
"""

from __future__ import annotations

_PREFIXES = ("Value error, ", "Assertion failed, ")


def clean_message(msg: str) -> str:
    """``msg`` without pydantic's "Value error, " / "Assertion failed, " prefix."""
    for prefix in _PREFIXES:
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg
