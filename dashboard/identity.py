"""Who is this learner? A random token in their link, so a reload, a bookmark or a new tab finds their runs.

No accounts: the first visit creates a token of 128 random bits and puts it in the page URL
(`?learner=...`). Streamlit clears query parameters when the learner switches pages, so every
script run puts it back from the session. Opening a link with another token switches to that
learner's runs (that is how a learner moves to another computer). Anyone with the link sees the runs,
which the Home page says plainly. The token never reaches the disk: runs live under a hash of it.
"""
from __future__ import annotations

import secrets

import streamlit as st

from simplecnn.runstore import TOKEN, learner_key

PARAM = "learner"
_TOKEN = "_learner_token"


def learner_token() -> str:
    """This learner's token: from the link if it holds a valid one, else the session's, else a new one."""
    from_link = st.query_params.get(PARAM)
    token = st.session_state.get(_TOKEN)
    if from_link and TOKEN.fullmatch(from_link):
        token = from_link
    elif token is None:
        token = secrets.token_hex(16)  # 128 bits
    st.session_state[_TOKEN] = token
    if from_link != token:
        st.query_params[PARAM] = token
    return token


def learner() -> str:
    """The learner's key in the run store (a hash of the token)."""
    return learner_key(learner_token())


def personal_link(base_url: str | None = None) -> str:
    """The learner's own link: this app's address with their token."""
    base = base_url if base_url is not None else _app_url()
    return f"{base}?{PARAM}={learner_token()}"


def _app_url() -> str:
    try:
        url = st.context.url or ""
    except Exception:
        url = ""
    return url.split("?", 1)[0] or "/"
