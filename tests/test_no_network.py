"""The app makes no network calls at run time, and sends no telemetry.

Every page runs through app.py (AppTest) while every way Python opens a connection or resolves
a name is patched to refuse, and record, anything that is not this machine's loopback.
"""
from __future__ import annotations

import ipaddress
import socket
import tomllib

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import nav
from tests.conftest import ROOT

PAGES = nav.DASHBOARD_PAGES + nav.LESSON_PAGES


def is_local(host) -> bool:
    """Loopback names and addresses, and Unix-socket paths, are fine; anything else is the network."""
    if isinstance(host, (bytes, bytearray)):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    if host in ("localhost", "") or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def network_attempts(monkeypatch) -> list[str]:
    """Patch socket connects and name lookups: non-loopback ones raise and are recorded."""
    attempts: list[str] = []

    def refuse(what: str):
        attempts.append(what)
        raise OSError(f"network blocked by the test: {what}")

    def host_of(address):
        return address[0] if isinstance(address, tuple) else address

    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex
    original_create_connection, original_getaddrinfo = socket.create_connection, socket.getaddrinfo

    def connect(self, address):
        if self.family != socket.AF_UNIX and not is_local(host_of(address)):
            refuse(f"connect {address}")
        return original_connect(self, address)

    def connect_ex(self, address):
        if self.family != socket.AF_UNIX and not is_local(host_of(address)):
            refuse(f"connect_ex {address}")
        return original_connect_ex(self, address)

    def create_connection(address, *args, **kwargs):
        if not is_local(host_of(address)):
            refuse(f"create_connection {address}")
        return original_create_connection(address, *args, **kwargs)

    def getaddrinfo(host, *args, **kwargs):
        if not is_local(host):
            refuse(f"getaddrinfo {host}")
        return original_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


@pytest.fixture
def run_pages_through_app_py(monkeypatch):
    """AppTest would otherwise run pages/<name>.py without app.py (see tests/test_faults_apptest.py)."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def test_the_guard_really_blocks_and_records(network_attempts):
    with pytest.raises(OSError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never routed
    with pytest.raises(OSError):
        socket.getaddrinfo("example.com", 443)
    assert network_attempts == ["create_connection ('192.0.2.1', 80)", "getaddrinfo example.com"]
    network_attempts.clear()
    socket.getaddrinfo("127.0.0.1", 80)  # loopback stays allowed
    assert network_attempts == []


def test_every_page_runs_without_touching_the_network(network_attempts, run_pages_through_app_py):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    headings = {}
    for path, _, _ in PAGES:
        at.switch_page(path)
        at.run()
        assert not at.exception, (path, at.exception)
        headings[path] = at.title[0].value if len(at.title) else ""
    assert all(headings.values()) and len(set(headings.values())) == len(PAGES), headings  # each page ran
    assert network_attempts == [], network_attempts


def test_no_telemetry_and_a_size_limit_in_the_streamlit_config():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["browser"]["gatherUsageStats"] is False
    assert config["server"]["maxUploadSize"] == 10  # MB, the uploader's own refusal
