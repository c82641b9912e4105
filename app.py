"""SimpleCNN dashboard entry: `streamlit run app.py`. Owns the page frame, navigation and status bar."""
from pathlib import Path

import streamlit as st

from dashboard import nav
from dashboard.status import training_status
from simplecnn.data import DataError

ROOT = Path(__file__).resolve().parent

st.set_page_config(page_title="SimpleCNN — learn CNNs by training one", page_icon="🧠", layout="wide")


def _pages(entries):
    return [st.Page(ROOT / path, title=title, icon=icon, default=(path == nav.HOME))
            for path, title, icon in entries if (ROOT / path).is_file()]


page = st.navigation({"Dashboard": _pages(nav.DASHBOARD_PAGES), "Learn": _pages(nav.LESSON_PAGES)})
training_status()
try:
    page.run()
except DataError as exc:  # a data file is missing or corrupt: name it and the fix, never a traceback
    st.error(f"**The dataset cannot be loaded.** {exc}", icon=":material/error:")
