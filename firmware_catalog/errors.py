"""The error types of the catalog. Parsing and import functions raise only these for bad input."""

from __future__ import annotations


class CatalogError(Exception):
    """Base of every error the catalog raises for bad input."""


class VersionParseError(CatalogError, ValueError):
    """A string is not a version of the given scheme; ``reason`` says why."""

    def __init__(self, text: str, scheme: str, reason: str) -> None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(f"{shown!r} is not a {scheme} version: {reason}")
        self.text = text
        self.scheme = scheme
        self.reason = reason


class RangeError(CatalogError, ValueError):
    """A version range (``vers:`` notation) is malformed or matches no version."""


class DocumentError(CatalogError):
    """A CSAF document (or KEV catalog) was rejected.

    ``document`` names it (tracking id, else the file name or URL), ``path`` is the JSON path of
    the offending value (``product_tree.branches[0].name``, ``$`` for the whole document).
    """

    def __init__(self, document: str, path: str, reason: str) -> None:
        super().__init__(f"{document}: {path}: {reason}")
        self.document = document
        self.path = path
        self.reason = reason


class FetchError(CatalogError):
    """A trusted provider could not be read (network, HTTP status, hash mismatch)."""
