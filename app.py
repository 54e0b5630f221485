"""The dashboard's server: `streamlit run app.py` (what `make run` and the container start).

Home.py and pages/ are the app; `st.App` (Streamlit's public ASGI entry point) adds the two routes that set and
delete the HttpOnly session cookie (ui/session_routes.py). `streamlit run Home.py` still serves the pages, but
without these routes a reload signs the operator out.
"""

import streamlit as st

from ui.session_routes import session_routes

app = st.App("Home.py", routes=session_routes())
