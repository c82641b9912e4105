"""Widget helpers: values that survive page switches."""
from __future__ import annotations

import streamlit as st

_PREFIX = "_keep_"


def _save(key: str) -> None:
    st.session_state[_PREFIX + key] = st.session_state[key]


def keep(key: str, default) -> dict:
    """kwargs for a widget whose value survives page switches (Streamlit drops unrendered widgets' state).

    Usage: `st.slider("Dropout", 0.0, 0.9, **keep("train_dropout1", 0.45))`.
    """
    store = _PREFIX + key
    if store not in st.session_state:
        st.session_state[store] = default
    st.session_state[key] = st.session_state[store]
    return {"key": key, "on_change": _save, "args": (key,)}


def kept(key: str, default=None):
    """The stored value of a `keep` widget, readable from any page."""
    return st.session_state.get(_PREFIX + key, default)
