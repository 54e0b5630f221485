"""The dashboard's two HTTP routes for its session cookie, mounted by app.py through `st.App` (Streamlit's public
ASGI entry point, 1.67): a page run cannot send a response header, so only a route can set an HttpOnly cookie.

- POST /api/session with a session's one-time handoff code (engine/operators/sessions.py) answers with the session
  cookie and the trusted-browser cookie: HttpOnly, SameSite=Strict, Path = the app's base path, Secure when the
  browser is on https. Page JavaScript posts the code and never sees the token.
- POST /api/session/end with a session's id ends that session and deletes the cookie, if the cookie names it (a
  cookie that a newer sign-in in another tab replaced is left alone).

Both refuse a request without the X-NTS-Session header or from another origin: a cross-site form cannot add a
header, and a cross-site script would need a CORS answer these routes never give.
"""

from __future__ import annotations

import asyncio
import logging
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from engine.core.db import make_engine, make_session_factory, transaction
from engine.core.settings import Settings, get_settings
from engine.operators.sessions import DEVICE_LIFETIME, device_token, end_session_of_cookie, exchange_handoff

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

log = logging.getLogger(__name__)
COOKIE = "nts_session"
DEVICE_COOKIE = "nts_device"
REQUEST_HEADER = "X-NTS-Session"
EXCHANGE = "api/session"
END = "api/session/end"
mounted = False
"""Set when app.py mounted the routes; a dashboard started as `streamlit run Home.py` has no way to set cookies."""


def base_path() -> str:
    """The app's base path ("" or "/desk"), from Streamlit's server.baseUrlPath."""
    from streamlit import config

    base = (config.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}" if base else ""


def route_url(route: str) -> str:
    return f"{base_path()}/{route}"


def session_routes() -> list[BaseRoute]:
    """The routes for `st.App(..., routes=session_routes())`."""
    from starlette.routing import Route

    global mounted
    mounted = True
    return [
        Route(route_url(EXCHANGE), exchange_cookie, methods=["POST"]),
        Route(route_url(END), end_cookie, methods=["POST"]),
    ]


@cache
def _factory(database_url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(database_url))


def _same_origin(request: Request) -> bool:
    if request.headers.get(REQUEST_HEADER) != "1":
        return False
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host", "")


def _secure(request: Request) -> bool:
    """Secure behind https: the browser's origin (it sets Origin itself), the scheme we were reached by, or the
    scheme a TLS proxy says the browser used."""
    origin = request.headers.get("origin") or ""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return origin.startswith("https://") or request.url.scheme == "https" or forwarded == "https"


def _set(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=base_path() or "/",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )


async def exchange_cookie(request: Request) -> Response:
    from starlette.responses import JSONResponse

    if not _same_origin(request):
        return JSONResponse({"ok": False, "error": "refused"}, status_code=403)
    code = (await request.body())[:100].decode("ascii", "replace").strip()
    settings = get_settings()
    issued = await asyncio.to_thread(_exchange, settings, code)
    if issued is None:
        return JSONResponse({"ok": False, "error": "unknown or used code"}, status_code=403)
    token, max_age, device = issued
    response = JSONResponse({"ok": True}, headers={"Cache-Control": "no-store"})
    _set(response, request, COOKIE, token, max_age)
    _set(response, request, DEVICE_COOKIE, device, int(DEVICE_LIFETIME.total_seconds()))
    return response


def _exchange(settings: Settings, code: str) -> tuple[str, int, str] | None:
    with transaction(_factory(settings.database_url)) as session:
        cookie = exchange_handoff(session, settings, code)
    if cookie is None:
        return None
    return cookie.token, cookie.max_age, device_token(settings, cookie.operator_id)


async def end_cookie(request: Request) -> Response:
    from starlette.responses import JSONResponse

    if not _same_origin(request):
        return JSONResponse({"ok": False, "error": "refused"}, status_code=403)
    body = (await request.body())[:20].decode("ascii", "replace").strip()
    if not body.isdigit():
        return JSONResponse({"ok": False, "error": "no session named"}, status_code=400)
    settings = get_settings()
    forgotten = await asyncio.to_thread(_end, settings, request.cookies.get(COOKIE), int(body))
    response = JSONResponse({"ok": forgotten}, headers={"Cache-Control": "no-store"})
    if forgotten:
        response.delete_cookie(
            COOKIE, path=base_path() or "/", secure=_secure(request), httponly=True, samesite="strict"
        )
    return response


def _end(settings: Settings, token: str | None, session_id: int) -> bool:
    with transaction(_factory(settings.database_url)) as session:
        return end_session_of_cookie(session, token, session_id)
