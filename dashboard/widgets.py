"""Widget helpers: values that survive page switches, and the lessons' predict-then-check question."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

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
    # Hand the stored value to the widget only when it differs: after a page switch (Streamlit dropped
    # the widget's state) or when code changed it (a shared link). Assigning it on every run would make
    # Streamlit push the value to the browser each time, and a slider moved key by key faster than the
    # server answers would be thrown back to the value of an older run.
    if key not in st.session_state or st.session_state[key] != st.session_state[store]:
        st.session_state[key] = st.session_state[store]
    return {"key": key, "on_change": _save, "args": (key,)}


def kept(key: str, default=None):
    """The stored value of a `keep` widget, readable from any page."""
    return st.session_state.get(_PREFIX + key, default)


@dataclass(frozen=True)
class Checked:
    """A checked answer: the learner's choice and the one the page computed."""

    guess: Any
    truth: Any

    @property
    def right(self) -> bool:
        return self.guess == self.truth


def predict_then_check(question: str, options: Sequence, key: str, answer: Callable[[], tuple[Any, str] | None], *,
                       format_func: Callable[[Any], str] = str, horizontal: bool = False, hint: str | None = None,
                       on_check: Callable[[Any], None] | None = None) -> Checked | None:
    """A lesson's question: choices with none pre-selected, "Check by running it", then Right / Not quite.

    `answer()` runs only once the learner has checked with a choice made, so nothing that gives the
    answer away is computed or shown before; it returns (right option, explanation in Markdown), or
    None when the answer is not ready yet (it then says why itself). Widget keys: `{key}_guess`,
    `{key}_check`, and `{key}_checked` in session_state. Returns the Checked answer, else None.
    """
    guess = st.radio(question, options, index=None, key=f"{key}_guess", format_func=format_func,
                     horizontal=horizontal)
    if hint:
        st.caption(hint)
    if st.button("Check by running it", key=f"{key}_check"):
        st.session_state[f"{key}_checked"] = True
        if on_check is not None:
            on_check(guess)
    if not st.session_state.get(f"{key}_checked"):
        return None
    if guess is None:
        st.warning("Pick an answer first, then check.")
        return None
    result = answer()
    if result is None:
        return None
    checked = Checked(guess, result[0])
    (st.success if checked.right else st.error)(f"{'Right' if checked.right else 'Not quite'}: {result[1]}")
    return checked
