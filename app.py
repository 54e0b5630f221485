"""The dashboard's server: `streamlit run app.py` (what `make run` and the container start).

Home.py and pages/ are the app; `st.App` (Streamlit's public ASGI entry point) adds what a page script cannot: the
two routes that set and delete the HttpOnly session cookie (ui/session_routes.py), the security headers on every
response (ui/security_headers.py), and the engine started with the server rather than by the first page
(ui/runtime.py's `start_with_the_server`, in a thread so the server answers meanwhile). `streamlit run Home.py`
still serves the pages, but without any of them: a reload signs the operator out, other sites may frame the pages,
and nothing is polled until someone opens one.
"""

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import streamlit as st
from starlette.middleware import Middleware

from ui.security_headers import SecurityHeaders
from ui.session_routes import session_routes


def start_engine() -> None:
    from ui.runtime import start_with_the_server  # the engine's imports, off the thread that starts the server

    start_with_the_server()


@asynccontextmanager
async def engine_with_the_server(_: st.App) -> AsyncIterator[None]:
    threading.Thread(target=start_engine, name="engine-start", daemon=True).start()  # ui/runtime.py STARTING_THREAD
    yield


app = st.App(
    "Home.py",
    lifespan=engine_with_the_server,
    routes=session_routes(),
    middleware=[Middleware(SecurityHeaders)],
)
