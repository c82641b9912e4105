"""SimpleCNN dashboard entry: `streamlit run app.py`. Owns the page frame, navigation and status bar."""
import os
from pathlib import Path

# Before torch loads: each script run is a new thread with its own OpenMP team, and libgomp's
# default spin-waiting made a drawing's preprocess + predict 57 ms instead of 7 ms (median, 12
# strokes). Training runs in its own process (simplecnn.worker), which does not inherit this.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

from dashboard import nav, state, teacher
from dashboard.identity import learner
from dashboard.status import learner_link_ui, training_status
from simplecnn.data import DataError

ROOT = Path(__file__).resolve().parent

st.set_page_config(page_title="SimpleCNN — learn CNNs by training one", page_icon="🧠", layout="wide")


def _pages(entries):
    return [st.Page(ROOT / path, title=title, icon=icon, default=(path == nav.HOME))
            for path, title, icon in entries if (ROOT / path).is_file()]


state.classroom().touch(learner())  # also puts the learner's token back into the URL after a page switch
sections = {"Dashboard": _pages(nav.DASHBOARD_PAGES), "Learn": _pages(nav.LESSON_PAGES)}
if teacher.is_teacher():  # no teacher page at all unless the link carries the server's teacher token
    sections = {"Teacher": _pages(nav.TEACHER_PAGES), **sections}  # first: the menu folds long lists
page = st.navigation(sections)
training_status()
learner_link_ui()
try:
    page.run()
except DataError as exc:  # a data file is missing or corrupt: name it and the fix, never a traceback
    st.error(f"**The dataset cannot be loaded.** {exc}", icon=":material/error:")
