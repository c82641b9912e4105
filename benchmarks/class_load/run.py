"""Load-test a class at the protocol level: start the server(s), run Locust, report the figures.

Scenarios (each with a bounded number of users and a --run-time; traffic to 127.0.0.1 only):

* a: N learners drawing every 5-10 s and browsing pages, 1 of them training small runs back to back;
* b: N learners of which 10 train small runs back to back (start, watch, start again);
* c: b against 2 web servers sharing one run store and a local Ray head (2 CPUs) that trains every
  run; run inside a loopback-only network namespace, because Ray also listens on the machine's
  other addresses (needs `ip netns`, i.e. root and iproute2).

The server(s) and everything they start (training processes, Ray) are pinned to CPU 0 with
`taskset`, Locust to CPU 1, so the load generator does not take the server's CPU. While Locust
runs, the servers' memory (VmRSS of the server and its child processes) is sampled every second,
and with --profile py-spy samples the (first) server for where its CPU time goes.

    python benchmarks/class_load/run.py a --users 30 --run-time 120
    python benchmarks/class_load/run.py knee --users 10,20,30,45,60 --run-time 90
    python benchmarks/class_load/run.py b --users 30 --run-time 180
    python benchmarks/class_load/run.py c --users 30 --run-time 180

Results: one JSON file per run in benchmarks/class_load/results/ (git-ignored), and a summary
printed as a Markdown table row.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from draw_latency import AppServer  # noqa: E402
from simplecnn.sysinfo import cpu_name  # noqa: E402

RESULTS = HERE / "results"
SERVER_CPUS = "0"
LOCUST_CPUS = "1"
TRAINERS = {"a": 1, "b": 10, "c": 10}
SERVERS = {"a": 1, "b": 1, "c": 2}


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def server_cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the server processes themselves (not their children)."""
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def tree_rss_kb(pid: int) -> int:
    """VmRSS of a process and all its descendants (training processes, Ray workers it does not own)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss // 1024
    return total


class MemorySampler(threading.Thread):
    """Samples the servers' RSS (with their children) every second while the load runs."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.samples: list[tuple[float, int, int]] = []  # (t, server-only kB, with children kB)
        self.stopping = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.stopping.wait(1.0):
            own = sum(psutil.Process(p).memory_info().rss // 1024 for p in self.pids if psutil.pid_exists(p))
            self.samples.append((time.time(), own, sum(tree_rss_kb(p) for p in self.pids)))


# -- Ray, for scenario c ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ray_head(temp: Path):
    """`ray start --head --block` with 2 CPUs, pinned to the server's CPU, stopped by its process group."""
    port = free_port()
    log_path = temp / "ray-head.log"
    with open(log_path, "wb") as log:
        head = subprocess.Popen(["taskset", "-c", SERVER_CPUS, "ray", "start", "--head", "--block",
                                 "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats",
                                 "--port", str(port), "--temp-dir", str(temp / "ray")],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while b"ray start --address" not in log_path.read_bytes():
            if time.monotonic() > deadline or head.poll() is not None:
                raise RuntimeError("the Ray head did not start:\n" + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)


# -- one load run ----------------------------------------------------------------------------------
def warm_up(url: str) -> None:
    """One untimed learner opens Draw and draws, so models and data are loaded before the timing."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit_ws import StreamlitSession

    entries = json.loads((HERE / "recording.json").read_text())["entries"]
    session = StreamlitSession(url, secrets.token_hex(16), timeout=180)
    try:
        for label in ("page:Draw", "draw:3", "page:Train", "page:Results", "page:Inside the network"):
            msg = BackMsg()
            msg.ParseFromString(base64.b64decode(next(e for e in entries if e["label"] == label)["backmsg"]))
            session.rerun(msg)
    finally:
        session.close()


def summarise(samples: list[dict], run_time: float, memory: MemorySampler, users: int, scenario: str,
              profile: dict | None) -> dict:
    def times(name_prefix: str, key: str = "s") -> list[float]:
        return [s[key] for s in samples if s["name"].startswith(name_prefix) and not s["error"]
                and s.get(key) is not None]

    def stats(values: list[float]) -> dict:
        return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
                "max": max(values) if values else None}

    trainings = [s for s in samples if s["name"] == "training"]
    errors = [s for s in samples if s["error"]]
    error_kinds: dict[str, int] = {}
    for s in errors:
        key = f"{s['name']}: {s['error'][:90]}"
        error_kinds[key] = error_kinds.get(key, 0) + 1
    rss = [own for _, own, _ in memory.samples]
    rss_tree = [tree for _, _, tree in memory.samples]
    return {
        "scenario": scenario, "users": users, "run_time_s": run_time,
        "draw_answer": stats(times("draw", "answer_s")),  # request -> "Prediction: D" text arrived
        "draw_finished": stats(times("draw")),  # request -> script_finished
        "page_load": stats(times("page:")),
        "fragment": stats(times("fragment:")),
        "train_start": stats(times("train:start")),
        "requests": sum(1 for s in samples if s["name"] != "training"),
        "errors": len(errors), "error_kinds": error_kinds,
        "trainings_ended": len(trainings),
        "trainings_finished_per_min": sum(1 for s in trainings if s.get("status") == "finished") / (run_time / 60),
        "training_s": stats([s["s"] for s in trainings]),
        "server_rss_mb": {"start": rss[0] / 1024 if rss else None, "max": max(rss) / 1024 if rss else None,
                          "end": rss[-1] / 1024 if rss else None},
        "with_children_rss_mb_max": max(rss_tree) / 1024 if rss_tree else None,
        "profile": profile,
    }


def run_load(scenario: str, users: int, run_time: int, spawn_rate: float, profile: bool,
             server_env: dict[str, str]) -> dict:
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="simplecnn-class-load-") as tmp, contextlib.ExitStack() as stack:
        temp = Path(tmp)
        runs_dir = temp / "runs"
        env = {"SIMPLECNN_RUNS_DIR": str(runs_dir), "SIMPLECNN_MAX_RUNS_PER_LEARNER": "1000",
               "SIMPLECNN_MAX_LEARNER_MB": "5000", **server_env}
        if scenario == "c":
            env["SIMPLECNN_RAY_ADDRESS"] = stack.enter_context(ray_head(temp))
            env["SIMPLECNN_RAY_CPUS_PER_RUN"] = "1"
        servers = [stack.enter_context(AppServer(env=env, prefix=["taskset", "-c", SERVER_CPUS]))
                   for _ in range(SERVERS[scenario])]
        for server in servers:
            warm_up(server.url)
        samples_path = temp / "samples.jsonl"
        memory = MemorySampler([s.pid for s in servers])
        memory.start()
        cpu_before = server_cpu_s([s.pid for s in servers])
        spy = None
        if profile and shutil.which("py-spy"):
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(servers[0].pid), "--duration", str(run_time),
                                    "--rate", "50", "--format", "raw", "--output", str(temp / "profile.txt"),
                                    "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        locust_env = {**os.environ, "CLASS_LOAD_URLS": ",".join(s.url for s in servers),
                      "CLASS_LOAD_RUNS_DIR": str(runs_dir), "CLASS_LOAD_SAMPLES": str(samples_path),
                      "CLASS_LOAD_TRAINERS": str(TRAINERS[scenario])}
        cmd = ["taskset", "-c", LOCUST_CPUS, sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"),
               "--headless", "--users", str(users), "--spawn-rate", str(spawn_rate), "--run-time", f"{run_time}s",
               "--stop-timeout", "30", "--only-summary", "--host", servers[0].url]
        print(f"== scenario {scenario}: {users} users ({TRAINERS[scenario]} training), {len(servers)} server(s), "
              f"{run_time} s", flush=True)
        result = subprocess.run(cmd, env=locust_env, cwd=ROOT, capture_output=True, text=True,
                                timeout=run_time + 300)
        server_cpu = server_cpu_s([s.pid for s in servers]) - cpu_before
        memory.stopping.set()
        memory.join()
        if spy is not None:
            spy.wait(timeout=120)
        if result.returncode not in (0, 1):  # 1: Locust saw failures (they are in the samples)
            raise RuntimeError(f"locust failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        (RESULTS / "last-locust.log").write_text(result.stdout + result.stderr)
        samples = [json.loads(line) for line in samples_path.read_text().splitlines()] if samples_path.exists() else []
        prof = classify_profile(temp / "profile.txt") if spy is not None else None
        summary = summarise(samples, run_time, memory, users, scenario, prof)
        summary["server_cpu_s"] = server_cpu
        # The server's own CPU (not its training processes) per learner per minute of load: the
        # cost of one live session, the figure the optimisations below are measured by.
        summary["server_cpu_s_per_learner_min"] = server_cpu / users / (run_time / 60)
        summary["server_env"] = server_env
        summary["cpu"] = cpu_name()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        if (temp / "profile.txt").exists():
            shutil.copy(temp / "profile.txt", RESULTS / f"{scenario}-{users}u-{stamp}.profile.txt")
        (RESULTS / f"{scenario}-{users}u-{stamp}.json").write_text(json.dumps({**summary, "samples": samples}))
        return summary


# -- where the server's CPU time goes --------------------------------------------------------------
CATEGORIES = [  # first match wins, tested against the whole collapsed stack
    ("figure building (plotly)", ("plotly/",)),
    ("model forward/saliency (torch)", ("torch/", "simplecnn/drawing.py", "simplecnn/inspection.py")),
    ("run store / jobs (disk)", ("simplecnn/runstore.py", "simplecnn/jobs.py", "simplecnn/files.py",
                                 "simplecnn/classroom.py")),
    ("message serialisation + websocket", ("SerializeToString", "websocket", "starlette", "uvicorn",
                                           "forward_msg", "protobuf", "_enqueue_forward_msg", "app_session.py")),
    ("script run (page code, Streamlit elements)", ("script_runner.py", "exec_code.py")),
    ("event loop / other", ("",)),
]


def classify_profile(path: Path) -> dict | None:
    """Share of the server's CPU samples per category, from py-spy's collapsed (raw) stacks."""
    if not path.exists():
        return None
    counts = {name: 0 for name, _ in CATEGORIES}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for name, needles in CATEGORIES:
            if any(n in stack for n in needles):
                counts[name] += int(count)
                break
    return {"samples": total, "shares": {k: v / total for k, v in counts.items()} if total else {}}



def row(s: dict) -> str:
    def f(v, scale=1.0, digits=2):
        return "–" if v is None else f"{v * scale:.{digits}f}"
    return (f"| {s['scenario']} | {s['users']} | {f(s['draw_answer']['p50'])} / {f(s['draw_answer']['p95'])} / "
            f"{f(s['draw_answer']['max'])} | {f(s['page_load']['p50'])} / {f(s['page_load']['p95'])} | "
            f"{s['errors']} / {s['requests']} | {f(s['server_rss_mb']['max'], digits=0)} "
            f"({f(s['with_children_rss_mb_max'], digits=0)}) | {f(s['trainings_finished_per_min'], digits=1)} | "
            f"{f(s.get('server_cpu_s_per_learner_min'), digits=3)} |")


HEADER = ("| scenario | learners | draw → prediction p50 / p95 / max (s) | page load p50 / p95 (s) | "
          "errors / requests | server RSS max MB (with children) | trainings finished / min | "
          "server CPU s per learner-minute |\n"
          "|---|---|---|---|---|---|---|---|")


# -- a loopback-only network namespace for scenario c ---------------------------------------------
def reexec_in_namespace(argv: list[str]) -> int:
    """Run this script again inside a fresh network namespace with only `lo` up; delete it after."""
    name = f"simplecnn-load-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        return subprocess.run(["ip", "netns", "exec", name, sys.executable, __file__, *argv, "--in-namespace"]).returncode
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["a", "b", "c", "knee"],
                        help="a, b, c as above; knee: scenario a at each --users count")
    parser.add_argument("--users", default="30", help="learners (comma-separated list for knee; default: 30)")
    parser.add_argument("--run-time", type=int, default=120, help="seconds of load per run (default: 120)")
    parser.add_argument("--spawn-rate", type=float, default=None,
                        help="learners arriving per second (default: learners / 30, at least 1: a class "
                             "logging in over half a minute)")
    parser.add_argument("--profile", action="store_true", help="sample the server with py-spy (default: off)")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the server(s), e.g. to compare a setting (repeatable)")
    parser.add_argument("--in-namespace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if os.cpu_count() and os.cpu_count() < 2:
        print("needs 2 CPUs: one for the server, one for Locust", file=sys.stderr)
        return 2
    if args.scenario == "c" and not args.in_namespace:
        return reexec_in_namespace(sys.argv[1:])
    server_env = dict(kv.split("=", 1) for kv in args.server_env)
    counts = [int(u) for u in args.users.split(",")]
    scenario = "a" if args.scenario == "knee" else args.scenario
    summaries = []
    for users in counts:
        spawn_rate = args.spawn_rate or max(1.0, users / 30)
        summary = run_load(scenario, users, args.run_time, spawn_rate, args.profile, server_env)
        summaries.append(summary)
        print(HEADER + "\n" + row(summary), flush=True)
        print(json.dumps({k: summary[k] for k in ("draw_finished", "fragment", "train_start", "training_s",
                                                  "error_kinds", "server_rss_mb", "profile")}, indent=1), flush=True)
    if len(summaries) > 1:
        print("\n" + HEADER + "\n" + "\n".join(row(s) for s in summaries))
        over = [s["users"] for s in summaries if (s["draw_answer"]["p95"] or 0) > 1.0]
        print(f"knee (first learner count with draw p95 > 1 s): {over[0] if over else 'not reached'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
