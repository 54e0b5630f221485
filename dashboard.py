"""The dashboard as it is served: Home.py and pages/ behind Streamlit's ASGI app, with our security headers.

`streamlit run dashboard.py` finds `app` and serves it with uvicorn, taking the same flags and .streamlit/config.toml
as `streamlit run Home.py`; the middleware adds what Streamlit has no option for (ui/security_headers.py).
"""

import streamlit as st
from starlette.middleware import Middleware

from ui.security_headers import SecurityHeaders

app = st.App("Home.py", middleware=[Middleware(SecurityHeaders)])
