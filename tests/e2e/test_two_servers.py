"""Two web servers on one run store (what a reverse proxy with sticky sessions spreads a class over):
a learner's link works on either. A run started through the first is visible through the second,
stopped there and resumed there; the first, reloaded, follows it to the end."""
from __future__ import annotations

import re

from .conftest import AppServer, button, exception_boxes, goto, open_tab, set_number, set_slider, wait_for_run, wait_for_text

MAIN = '[data-testid="stMain"]'


def test_a_learners_link_works_on_either_server(browser, tmp_path):
    env = {"SIMPLECNN_RUNS_DIR": str(tmp_path / "runs"), "SIMPLECNN_SAVE_EVERY": "2"}
    first = AppServer(tmp_path / "first.log", env).start()
    second = AppServer(tmp_path / "second.log", env).start()
    a = open_tab(browser, first.url)
    b = open_tab(browser, second.url)
    try:
        goto(a.page, "/train")
        set_slider(a.page, "Training images (train + validation)", "20,000")
        set_number(a.page, "Epochs", 6)
        button(a.page, "Start").click()
        run_id = wait_for_run(a.page, "running", progress=True)[0]
        link = re.search(r"\?learner=[0-9a-f]{32}", a.page.url).group(0)

        goto(b.page, "/train" + link)
        wait_for_text(b.page, f"{run_id} · running", selector=MAIN)
        wait_for_text(b.page, "training on another web server", selector=MAIN)
        button(b.page, "Stop").click()
        wait_for_run(a.page, "stopped", timeout=60)  # the first server's training process saw the request
        wait_for_run(b.page, "stopped", timeout=60)
        button(b.page, "Resume").click()
        wait_for_run(b.page, "running", progress=True, timeout=60)
        goto(a.page, "/train" + link)  # a stopped run's page does not refresh itself: the learner reloads
        wait_for_text(a.page, "training on another web server", selector=MAIN, timeout=60)
        wait_for_run(b.page, "finished", timeout=600)
        wait_for_run(a.page, "finished", timeout=60)  # a page that shows an active run follows it to the end
        assert exception_boxes(a.page) == [] and exception_boxes(b.page) == []
    finally:
        a.page.context.close()
        b.page.context.close()
        first.stop()
        second.stop()
    for server in (first, second):
        assert "Traceback" not in server.log(), server.log()


def test_behind_nginx_with_sticky_sessions(browser, tmp_path):
    """deploy/nginx.conf.template in front of two app processes: pages, the websocket and a training
    all work through the proxy's one address."""
    import shutil
    import subprocess
    import sys
    import urllib.request

    from .conftest import ROOT, free_port, unavailable, wait_until

    if not shutil.which("nginx"):
        unavailable("nginx is not installed (.ci/run installs Debian's nginx-light)")
    sys.path.insert(0, str(ROOT / "deploy"))
    from render_nginx import render

    env = {"SIMPLECNN_RUNS_DIR": str(tmp_path / "runs")}
    apps = [AppServer(tmp_path / f"app{i}.log", env).start() for i in (1, 2)]
    port = free_port()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(render(f"127.0.0.1:{port}", [f"127.0.0.1:{a.port}" for a in apps], str(prefix)))
    proxy = subprocess.Popen(["nginx", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    tab = None
    try:
        def healthy():
            try:
                return urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200
            except OSError:
                return False
        wait_until(healthy, timeout=30, message="nginx to answer")
        tab = open_tab(browser, url)
        goto(tab.page, "/train")
        set_slider(tab.page, "Training images (train + validation)", "2,000")
        set_number(tab.page, "Epochs", 2)
        button(tab.page, "Start").click()
        wait_for_run(tab.page, "finished", timeout=180)  # the live page's refreshes came through the proxy
        link = re.search(r"\?learner=[0-9a-f]{32}", tab.page.url).group(0)
        goto(tab.page, "/results" + link)
        wait_for_text(tab.page, "Results", selector=MAIN)
        assert exception_boxes(tab.page) == [] and tab.problems() == [], tab.problems()
        access = (prefix / "access.log").read_text()
        assert "/_stcore/stream" in access  # the websocket went through nginx
    finally:
        if tab is not None:
            tab.page.context.close()
        proxy.terminate()
        proxy.wait(15)
        for app in apps:
            app.stop()
