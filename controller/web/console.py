"""Console sign-in: a session opened with an API token (password and OIDC logins come later and
open the same kind of session).

``GET /login`` shows the form, ``POST /login`` (form-encoded, same origin) checks the token and
sets the session cookie (HttpOnly, SameSite=Strict, Secure behind TLS), ``POST /logout`` ends
it. The session's CSRF token is derived from the session id, so a page can embed it without
storing it; :mod:`controller.web.auth` checks it on every state-changing request a session makes.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

from controller.auth import Permission, looks_like_token, token_hash
from controller.storage import tokens
from controller.web import security
from controller.web.auth import SESSION_COOKIE, SESSION_TTL, csrf_for, principal, public, requires
from controller.web.state import STATE

_LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fernwart sign-in</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}input{{width:32rem}}</style></head><body>
<h1>fernwart</h1>{message}
<form method="post" action="/login">
<label>API token <input type="password" name="token" autocomplete="off" required></label>
<button type="submit">Sign in</button></form></body></html>
"""


def login_page(message: str = "", status: int = 200) -> web.Response:
    body = _LOGIN.format(message=f"<p>{escape(message)}</p>" if message else "")
    return web.Response(text=body, content_type="text/html", status=status)


@public
async def login_form(request: web.Request) -> web.Response:
    del request
    return login_page()


@public
@security.accepts(security.FORM)
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token = form.get("token")
    info = None
    if isinstance(token, str) and looks_like_token(token.strip()):
        info = await tokens.authenticate(request.app[STATE].store, token.strip())
    if info is None:
        return login_page("That token is not valid, revoked or expired.", status=401)
    session_id, _ = await tokens.open_session(request.app[STATE].store, info.id, SESSION_TTL)
    response = web.HTTPSeeOther("/")
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )
    return response


@requires(Permission.READ)
@security.accepts(security.FORM)
async def logout(request: web.Request) -> web.StreamResponse:
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        await tokens.close_session(request.app[STATE].store, session_id)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def session_bar(request: web.Request) -> str:
    """Who is signed in, and a sign-out button when the page came with a session."""
    who = principal(request)
    text = f"{escape(who.name)} ({escape(who.role.value)}{', ' + escape(who.tenant) if who.tenant else ''})"
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return f"<p>{text}</p>"
    csrf = escape(csrf_for(session_id))
    return (
        f'<form method="post" action="/logout"><p>{text} '
        f'<input type="hidden" name="csrf" value="{csrf}"><button type="submit">Sign out</button></p></form>'
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)


__all__ = ["add_routes", "login_page", "session_bar", "token_hash"]
