"""Settings you can share: a page's widgets mirrored in its URL, and a link that opens them for anyone.

On the first run of a page for a link (and whenever the link's settings change, e.g. a second link
pasted into the same tab), `from_link` puts the link's values into the widgets before they are
drawn, and says in a short note which values it could not use (those get their defaults). After the
widgets are drawn, `to_link` writes their values into the URL, only the ones that differ from the
defaults and never touching the other parameters: the learner's token (dashboard.identity) and the
teacher's stay as they are. `share_ui` shows the shareable link: this page's address with the
settings alone, without the learner's token, so that whoever opens it gets their own runs.

The validation itself is in dashboard.settings_params (no Streamlit, unit-tested).
"""
from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from dashboard.settings_params import Spec, encode, fields_of, parse
from dashboard.widgets import kept

_SEEN = "_shared_settings_seen"  # session_state: {page name: the settings parameters last applied or written}


def _link_params(fields: Spec) -> dict[str, str]:
    names = {f.param for f in fields_of(fields)}
    return {k: st.query_params.get(k) for k in st.query_params.keys() if k in names}


def from_link(name: str, fields: Spec) -> list[str]:
    """Apply the settings in the URL to the widgets (call before drawing them); the notes shown."""
    # The note sits in a container drawn on every run, so that everything below keeps its place when the
    # note is gone: otherwise the next rerun shifts every element by one and the browser briefly shows
    # a stale copy of each widget beside the new one (two "Steps" sliders in the browser suite).
    slot = st.container()
    seen = st.session_state.setdefault(_SEEN, {})
    if name in seen:
        # A link is applied once, when the page first opens in this session (opening a shared link is
        # a page load). Later URLs are our own mirror of the widgets, and one can lag a run behind them:
        # a slider moved key by key reruns before the browser has shown the previous value's URL, and
        # applying that URL again threw the slider back (found by the browser suite under load).
        return []
    current = _link_params(fields)
    seen[name] = current
    values, notes = parse(current, fields)
    for key, value in values.items():
        st.session_state["_keep_" + key] = value  # dashboard.widgets.keep hands it to the widget
        st.session_state.pop(key, None)
    if notes:
        slot.info("Some settings in this link could not be used, so they are at their defaults: "
                + "; ".join(notes) + ".", icon=":material/link_off:")
    elif values:
        slot.caption(f":material/link: {len(values)} setting{'s' if len(values) != 1 else ''} set from the link.")
    return notes


def current_values(fields: Spec) -> dict:
    """The widgets' values now (the kept ones; a widget not drawn yet has its default)."""
    values = {f.key: kept(f.key, f.default) for f in fields_of(fields)}
    return {f.key: kept(f.key, f.default) for f in fields_of(fields, values)}


def to_link(name: str, fields: Spec) -> dict[str, str]:
    """Mirror the widgets in the URL (call after drawing them); returns the settings parameters."""
    wanted = encode(current_values(fields), fields)
    current = _link_params(fields)
    if current != wanted:
        for param in current.keys() - wanted.keys():
            del st.query_params[param]
        for param, text in wanted.items():
            if current.get(param) != text:
                st.query_params[param] = text
    st.session_state.setdefault(_SEEN, {})[name] = wanted
    return wanted


def share_link(params: dict[str, str]) -> str:
    """This page's address with the settings only (no learner or teacher token)."""
    try:
        url = st.context.url or ""
    except Exception:
        url = ""
    base = url.split("?", 1)[0].split("#", 1)[0]
    return base + ("?" + urlencode(params, safe=",") if params else "")  # "show=Batch+GD,Momentum"


def share_ui(name: str, fields: Spec) -> str:
    """Mirror the settings in the URL and show "Copy link to these settings"; returns the link."""
    link = share_link(to_link(name, fields))
    # Keyed, so that it stays open when the link's one-off note above it is gone on the next rerun.
    with st.expander("Copy link to these settings", icon=":material/share:", key=f"share_settings_{name}"):
        st.caption("Whoever opens this link gets these settings on this page, with their own runs: it does "
                   "not carry your personal link. The copy button is at the right of the box.")
        st.code(link, language=None, wrap_lines=True)
    return link
