"""Streamlit-side helpers shared by the pages: session state, shared resources, the status bar."""


def _leave_legacy_pages_mode() -> None:
    """Make the first script run of a fresh server go through app.py's st.navigation.

    Streamlit treats an app with a `pages/` folder as a legacy multipage app until some run has
    called `st.navigation`: the very first visitor of a fresh server would get an auto-generated
    menu, and a deep link such as /draw would run pages/draw.py without app.py's frame (no
    sidebar status, no heartbeat). Clearing the flag and rerunning once fixes that for everyone.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if PagesManager.uses_pages_directory and get_script_run_ctx() is not None:
        PagesManager.uses_pages_directory = False
        import streamlit as st
        st.rerun()


_leave_legacy_pages_mode()
