"""JSON responses and query-string validation shared by every REST handler."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from runtime.config import clean_message

Q = TypeVar("Q", bound=BaseModel)


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
