"""zooscope's entry point: page config, one st.navigation over the pages, and the sidebar.

Run with ``zooscope serve`` (or ``streamlit run app/main.py``). Pages whose file does not
exist yet are simply not listed (see ``app.navigation``).
"""

from __future__ import annotations

import streamlit as st

from app import navigation, warmup
from app.cli.server import startup_problem
from app.runtime import images
from app.runtime.share import library_versions
from app.ui import messages
from model_zoo import best_device

images.configure_pillow()  # Pillow's limits before any page can decode anything (idempotent, so every run is fine)
st.set_page_config(page_title="zooscope", page_icon=":material/biotech:", layout="wide")

problem = startup_problem()
if problem:
    messages.error(problem)
    st.stop()
# Once per process: already running when started by `zooscope serve`; a bare `streamlit run` starts it here.
warmup.warm_up()

pages = [st.Page(str(p.file), title=p.title, icon=p.icon, url_path=p.url_path or None, default=p.name == "home")
         for p in navigation.available()]
current = st.navigation(pages)
with st.sidebar:  # the device the models run on and the versions that decide the numbers
    st.caption(messages.escape(f"Models run on: {best_device()}"))
    st.caption("  \n".join(messages.escape(f"{k} {v}") for k, v in library_versions().items()))
current.run()
