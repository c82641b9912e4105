"""A lesson's main widgets in its URL, and "Copy link to these settings" (the Train page's machinery).

`lesson_link("07")` goes right under a lesson's title: it applies a link's settings once, when the
page opens (with a short note naming any value it could not use), mirrors the widgets in the URL and
shows the shareable link. `setting(key)` gives a lesson widget its kept value and its default from
dashboard.lesson_params, so the widget takes a link's value without Streamlit's "default value and
Session State" warning: use it instead of a `value=`/`index=` argument.
"""
from __future__ import annotations

import streamlit as st

from dashboard.lesson_params import LESSONS, default
from dashboard.shared_settings import from_link, share_ui
from dashboard.widgets import keep, kept


def lesson_link(number: str) -> str:
    """Apply the link's settings for lesson `number` ("01" … "16") and show its share link."""
    name = f"lesson{number}"
    from_link(name, LESSONS[number])
    return share_ui(name, LESSONS[number])


def setting(key: str, fallback=None) -> dict:
    """keep() kwargs for a lesson widget declared in dashboard.lesson_params (`fallback` for a key with
    a default of its own, such as lesson 7's per-surface learning rate)."""
    return keep(key, default(key) if fallback is None else fallback)


def settle(key: str, allowed: list) -> None:
    """Put a kept choice back on the first allowed one when this run's widget cannot show it (lesson 3's
    learned filter needs a model); the page says why next to the widget."""
    if kept(key, allowed[0]) not in allowed:
        st.session_state["_keep_" + key] = allowed[0]
