"""The dashboard's server: `streamlit run app.py` (what `make run` and the container start).

Home.py and pages/ are the app; `st.App` (Streamlit's public ASGI entry point) adds what a page script cannot: the
two routes that set and delete the HttpOnly session cookie (ui/session_routes.py) and the security headers on every
response (ui/security_headers.py). `streamlit run Home.py` still serves the pages, but without either: a reload
signs the operator out, and other sites may frame the pages.
"""

import streamlit as st
from starlette.middleware import Middleware

from ui.security_headers import SecurityHeaders
from ui.session_routes import session_routes

app = st.App("Home.py", routes=session_routes(), middleware=[Middleware(SecurityHeaders)])
