"""zooscope's entry point: page config, one st.navigation over the pages, and the sidebar.

Run with ``zooscope serve`` (or ``streamlit run app/main.py``). Pages whose file does not
exist yet are simply not listed (see ``app.navigation``).
"""

from __future__ import annotations

import streamlit as st

from app import cache, inputs, messages, navigation, server, views

inputs.configure_pillow()  # Pillow's limits before any page can decode anything (idempotent, so every run is fine)
st.set_page_config(page_title="zooscope", page_icon=":material/biotech:", layout="wide")

problem = server.startup_problem()
if problem:
    messages.error(problem)
    st.stop()
cache.warm_up()  # once per process; already running when started by `zooscope serve` (a bare `streamlit run` starts it here)

pages = [st.Page(str(p.file), title=p.title, icon=p.icon, url_path=p.url_path or None, default=p.name == "home")
         for p in navigation.available()]
current = st.navigation(pages)
views.sidebar()
current.run()
