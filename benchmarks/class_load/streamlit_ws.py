"""A minimal Streamlit client at the protocol level: one websocket, BackMsg out, ForwardMsg in.

It does what the browser's frontend does for a session, less the rendering:

* connects to ``/_stcore/stream`` (subprotocol ``streamlit``, an allowed Origin);
* sends ``rerun_script`` BackMsgs (recorded from a real chromium session by ``record.py``), with
  this learner's own ``?learner=`` token in the query string and the hashes of the messages it has
  cached, as the frontend's ForwardMsg cache does;
* reads ForwardMsgs until ``script_finished``, collecting the text of markdown/heading elements and
  any exception element, so a caller can check the answer and not only the time;
* honours ``auto_rerun`` (a fragment with ``run_every``): it reruns that fragment at that interval,
  as an open tab does, when the caller lets it (``pump``).

Plain blocking sockets (``websocket-client``), so it runs under gevent in Locust and in plain
threads alike. No Streamlit server code is imported: only the protobuf classes.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

import websocket
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

SCRIPT_FINISHED = ForwardMsg.ScriptFinishedStatus
FINISHED_OK = {SCRIPT_FINISHED.FINISHED_SUCCESSFULLY, SCRIPT_FINISHED.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}


class ProtocolError(RuntimeError):
    """The server closed, sent an exception element, or did not finish the script in time."""


@dataclass
class ScriptRun:
    """What one rerun sent back: its texts, exceptions, timing and size."""

    texts: list[str] = field(default_factory=list)  # markdown bodies and headings, in arrival order
    text_at: list[float] = field(default_factory=list)  # s after the request when each text arrived
    exceptions: list[str] = field(default_factory=list)
    status: int | None = None  # ForwardMsg.ScriptFinishedStatus
    messages: int = 0
    received_bytes: int = 0
    first_delta_s: float | None = None  # request sent -> first delta of this run
    seconds: float = 0.0  # request sent -> script_finished

    def text_seconds(self, pattern: re.Pattern) -> float | None:
        """When the first text matching `pattern` arrived (s after the request), or None."""
        for text, at in zip(self.texts, self.text_at):
            if pattern.search(text):
                return at
        return None

    def find(self, pattern: re.Pattern) -> re.Match | None:
        """The last text matching `pattern` (the page's final answer, after any placeholder)."""
        for text in reversed(self.texts):
            match = pattern.search(text)
            if match:
                return match
        return None


def with_learner(query_string: str, token: str) -> str:
    """The recorded query string with this learner's token instead of the recording's."""
    pairs = [(k, v) for k, v in parse_qsl(query_string, keep_blank_values=True) if k != "learner"]
    return urlencode([*pairs, ("learner", token)])


class StreamlitSession:
    """One learner's tab, as far as the server can tell."""

    def __init__(self, base_url: str, token: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.ws: websocket.WebSocket | None = None
        self.session_id: str | None = None
        self.page_hash = ""  # the page the server says this session is on
        self.page_name = ""
        self.cached: set[str] = set()  # hashes of cacheable ForwardMsgs already received
        self.fragments: dict[str, tuple[float, float]] = {}  # fragment id -> (interval s, next due)
        self.last_client_state = None  # ClientState of the last full rerun (fragments reuse it)
        self._registered: set[str] = set()  # fragments registered by the script run in progress

    # -- connection ------------------------------------------------------------------------------
    def connect(self) -> None:
        ws_url = "ws" + self.base_url[len("http"):] + "/_stcore/stream"
        self.ws = websocket.create_connection(
            ws_url, timeout=self.timeout, subprotocols=["streamlit"], origin=self.base_url,
            enable_multithread=False)
        self.ws.settimeout(self.timeout)

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            finally:
                self.ws = None

    # -- one rerun -------------------------------------------------------------------------------
    def rerun(self, recorded: BackMsg, fragment_id: str = "", is_auto: bool = False) -> ScriptRun:
        """Send a recorded rerun_script as this learner and wait for its script_finished."""
        msg = BackMsg()
        msg.CopyFrom(recorded)
        state = msg.rerun_script
        state.query_string = with_learner(state.query_string, self.token)
        del state.cached_message_hashes[:]
        state.cached_message_hashes.extend(sorted(self.cached))
        if fragment_id:
            state.fragment_id = fragment_id
            state.is_auto_rerun = is_auto
        else:
            self.last_client_state = msg
        return self._send_and_wait(msg)

    def rerun_due_fragments(self) -> list[ScriptRun]:
        """Rerun every run_every fragment whose interval has passed, as the frontend's timer would."""
        runs = []
        now = time.monotonic()
        for fragment_id, (interval, due) in list(self.fragments.items()):
            if fragment_id not in self.fragments:
                continue  # an earlier fragment's st.rerun() ran the whole page, which dropped this one
            if now >= due and self.last_client_state is not None:
                self.fragments[fragment_id] = (interval, time.monotonic() + interval)
                runs.append(self.rerun(self.last_client_state, fragment_id=fragment_id, is_auto=True))
        return runs

    def next_fragment_due(self) -> float | None:
        return min((due for _, due in self.fragments.values()), default=None)

    def _send_and_wait(self, msg: BackMsg) -> ScriptRun:
        if self.ws is None:
            self.connect()
        run = ScriptRun()
        start = time.monotonic()
        self.ws.send_binary(msg.SerializeToString())
        deadline = start + self.timeout
        while True:
            if time.monotonic() > deadline:
                raise ProtocolError(f"no script_finished within {self.timeout:.0f} s")
            try:
                data = self.ws.recv()
            except websocket.WebSocketTimeoutException as exc:
                raise ProtocolError(f"no message for {self.timeout:.0f} s") from exc
            except websocket.WebSocketConnectionClosedException as exc:
                self.ws = None
                raise ProtocolError("the server closed the websocket") from exc
            if isinstance(data, str) or not data:
                continue
            run.messages += 1
            run.received_bytes += len(data)
            fwd = ForwardMsg()
            fwd.ParseFromString(data)
            if self._absorb(fwd, run, start):
                run.seconds = time.monotonic() - start
                return run

    def _absorb(self, fwd: ForwardMsg, run: ScriptRun, start: float) -> bool:
        """Take in one ForwardMsg; True when it ends the script run we wait for."""
        if fwd.hash and fwd.metadata.cacheable:
            self.cached.add(fwd.hash)
        kind = fwd.WhichOneof("type")
        if kind == "new_session":  # sent at the start of every script run
            self.session_id = fwd.new_session.initialize.session_id or self.session_id
            self.page_hash = fwd.new_session.page_script_hash or self.page_hash
            self._registered = set()
        elif kind == "delta":
            if run.first_delta_s is None:
                run.first_delta_s = time.monotonic() - start
            element = fwd.delta.new_element
            which = element.WhichOneof("type") if fwd.delta.WhichOneof("type") == "new_element" else None
            body = {"markdown": element.markdown.body, "heading": element.heading.body,
                    "alert": element.alert.body}.get(which) if which else None
            if body is not None:
                run.texts.append(body)
                run.text_at.append(time.monotonic() - start)
            elif which == "exception":
                run.exceptions.append(f"{element.exception.type}: {element.exception.message}")
        elif kind == "auto_rerun":
            interval = max(0.1, fwd.auto_rerun.interval)
            self.fragments[fwd.auto_rerun.fragment_id] = (interval, time.monotonic() + interval)
            self._registered.add(fwd.auto_rerun.fragment_id)
        elif kind == "stop_auto_rerun":
            for fragment_id in fwd.stop_auto_rerun.fragment_ids:
                self.fragments.pop(fragment_id, None)
        elif kind == "page_info_changed":
            pass
        elif kind == "script_finished":
            run.status = fwd.script_finished
            if run.status == SCRIPT_FINISHED.FINISHED_SUCCESSFULLY:
                # A whole-page run (also one a fragment's st.rerun() asked for): like the frontend,
                # keep only the timers that run registered.
                self.fragments = {f: v for f, v in self.fragments.items() if f in self._registered}
            return run.status != SCRIPT_FINISHED.FINISHED_EARLY_FOR_RERUN
        return False
