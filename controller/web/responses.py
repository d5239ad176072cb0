"""JSON responses and query-string validation shared by every REST handler."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from runtime.config import clean_message

Q = TypeVar("Q", bound=BaseModel)
MAX_ID_DIGITS = 18  # below 2**63: every database's BIGINT holds it
MAX_TEXT_ID = 512  # advisory ids (models.Finding.advisory_id)


def json_model(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(text=model.model_dump_json(), status=status, content_type="application/json")


def error(status: int, errors: list[dict[str, Any]]) -> web.Response:
    return web.json_response({"errors": errors}, status=status)


def parse_query(request: web.Request, model: type[Q]) -> Q | web.Response:
    """Validate the query string; 400 for a repeated parameter, 422 listing every bad field."""
    repeated = sorted({key for key in request.query if len(request.query.getall(key)) > 1})
    if repeated:
        return error(
            400, [{"loc": ["query", key], "msg": "given more than once; give it once"} for key in repeated]
        )
    with_nul = sorted(key for key, value in request.query.items() if "\x00" in key or "\x00" in value)
    if with_nul:  # no database column can hold it (PostgreSQL text refuses NUL)
        return error(422, [{"loc": ["query", key], "msg": "NUL character in the value"} for key in with_nul])
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as err:
        return error(
            422,
            [
                {
                    "loc": ["query", *item["loc"]],
                    "msg": clean_message(item["msg"]),
                    "input": item.get("input"),
                }
                for item in err.errors(include_url=False, include_context=False)
            ],
        )


def device_pk(raw: str) -> int | web.Response:
    """A device id from the path: ASCII digits only (``str.isdigit`` accepts "²" and "١٢"), 422 else."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_ID_DIGITS:
        return error(
            422, [{"loc": ["path", "id"], "msg": "expected a device id (a positive integer)", "input": raw}]
        )
    return int(raw)


def text_id(raw: str) -> str | web.Response:
    """An advisory id from the path: 422 if no stored id could be it (NUL, longer than the column)."""
    if "\x00" in raw or len(raw) > MAX_TEXT_ID:
        return error(422, [{"loc": ["path", "id"], "msg": "not an advisory id", "input": raw[:100]}])
    return raw
