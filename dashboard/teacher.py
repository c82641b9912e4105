"""The teacher's access: a page that exists only for a link carrying the server's teacher token.

`SIMPLECNN_TEACHER_TOKEN` unset means no teacher page at all. With it set, a link with
`?teacher=<token>` opens the class overview; the token is kept in the session and put back into
the URL after every page switch, like the learner's. Compared in constant time.
"""
from __future__ import annotations

import hmac
import os

import streamlit as st

TOKEN_ENV = "SIMPLECNN_TEACHER_TOKEN"
PARAM = "teacher"
_KEY = "_teacher_token"


def is_teacher() -> bool:
    expected = os.environ.get(TOKEN_ENV, "")
    if not expected:
        return False
    given = st.query_params.get(PARAM) or st.session_state.get(_KEY) or ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return False
    st.session_state[_KEY] = given
    if st.query_params.get(PARAM) != given:
        st.query_params[PARAM] = given
    return True
