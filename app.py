"""SimpleCNN dashboard entry: `streamlit run app.py`. Owns the page frame, navigation and status bar."""
import os
from pathlib import Path

# Before torch loads: each script run is a new thread with its own OpenMP team, and libgomp's
# default spin-waiting made a drawing's preprocess + predict 57 ms instead of 7 ms (median, 12
# strokes). Training runs in its own process (simplecnn.worker), which does not inherit this.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

from dashboard import nav, state, teacher
from dashboard.identity import PARAM, learner, learner_token
from dashboard.status import learner_link_ui, training_status
from simplecnn.data import DataError

ROOT = Path(__file__).resolve().parent

# The About entry also makes Streamlit show its main menu (top right, "⋮") under toolbarMode "minimal",
# and that menu is where a learner picks the System, Light or Dark theme (.streamlit/config.toml).
ABOUT = ("**SimpleCNN** teaches how a convolutional network works by training one on MNIST.  \n"
         "Light or dark: pick *Light*, *Dark* or *System* (your device's setting) in this menu.")
st.set_page_config(page_title="SimpleCNN — learn CNNs by training one", page_icon="🧠", layout="wide",
                   menu_items={"About": ABOUT})

# Found by tests/e2e/test_accessibility.py (axe-core); a <style>-only st.html takes no space.
# - Contrast (WCAG AA, 4.5:1): Streamlit draws captions at 60% opacity and code comments in a pale
#   grey (3.9:1 on white). 80% of the text colour passes, in the light and the dark theme alike.
# - KaTeX display formulas overflow their box by a pixel or two, which made each one a scroll region
#   that the keyboard cannot reach: a little padding holds that overflow; only a formula wider than
#   the column still scrolls (sideways).
# - Focus (tests/e2e/test_keyboard.py): page links, the main area (Streamlit makes it focusable, so the
#   keyboard can scroll it), a data grid's canvas and the drawing component's box showed no focus at
#   all: a 2 px outline in the primary colour on links and on anything made focusable by tabindex
#   (and around a component whose focus sits inside its shadow DOM, where page CSS cannot reach).
# - Both themes (tests/e2e/test_themes.py): the focus ring is #2563eb, 5.2:1 on the light background
#   and 3.5:1 on the dark one (WCAG 1.4.11 asks 3:1); the primary colour differs per theme. No blue
#   carries white button text at 4.5:1 and is itself 4.5:1 text on the dark background, so the text
#   Streamlit paints in the primary colour (a slider's value, the chosen segment, the open tab) takes
#   the theme's text colour; the primary colour still marks them (thumb, border, underline).
st.html("""<style>
[data-testid="stCaptionContainer"] { opacity: 0.8 !important; }
.token.comment { color: rgb(from currentColor r g b / 0.8) !important; }
.katex-display { overflow-y: hidden !important; padding: 2px 4px; }
a:focus-visible, [tabindex]:not([data-testid="stMain"]):focus-visible {
  outline: 2px solid #2563eb !important; outline-offset: 1px; }
[data-testid="stMain"]:focus-visible { outline: 2px solid #2563eb !important; outline-offset: -2px; }
[data-testid="stBidiComponentIsolated"]:focus-within { outline: 2px solid #2563eb; outline-offset: 2px; }
[data-testid="stSliderThumbValue"], [data-testid="stSliderThumbValue"] *,
[data-testid="stButtonGroup"] button[data-selected="true"], [data-testid="stButtonGroup"] button[data-selected="true"] *,
[data-testid="stTab"][aria-selected="true"], [data-testid="stTab"][aria-selected="true"] * { color: inherit !important; }
</style>""")


def _pages(entries):
    return [st.Page(ROOT / path, title=title, icon=icon, default=(path == nav.HOME))
            for path, title, icon in entries if (ROOT / path).is_file()]


state.classroom().touch(learner())  # also puts the learner's token back into the URL after a page switch
sections = {"Dashboard": _pages(nav.DASHBOARD_PAGES), "Learn": _pages(nav.LESSON_PAGES)}
if teacher.is_teacher():  # no teacher page at all unless the link carries the server's teacher token
    sections = {"Teacher": _pages(nav.TEACHER_PAGES), **sections}  # first: the menu folds long lists
page = st.navigation(sections, position="hidden")  # the app draws its own, accessible menu:
nav.sidebar_menu(sections, {PARAM: learner_token()})  # the link keeps the learner's token
training_status()
learner_link_ui()
try:
    page.run()
except DataError as exc:  # a data file is missing or corrupt: name it and the fix, never a traceback
    st.error(f"**The dataset cannot be loaded.** {exc}", icon=":material/error:")
