"""The machine: its CPU (named beside every speed figure), and the server's load, memory and disk, read
from /proc and the file system (Linux), for the teacher."""
from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name ("AMD EPYC ..."): a speed figure means little without it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _meminfo() -> dict[str, int]:
    values = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            values[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return values


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process (0 if it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def server_status(path: Path) -> dict:
    """CPU load, memory and the disk that holds `path`, as plain numbers."""
    try:
        load1, load5, _ = os.getloadavg()
    except OSError:
        load1 = load5 = float("nan")
    mem = _meminfo()
    disk = shutil.disk_usage(path)
    return {"cpus": os.cpu_count() or 1, "load1": load1, "load5": load5,
            "mem_total": mem.get("MemTotal", 0), "mem_available": mem.get("MemAvailable", 0),
            "server_rss": rss_bytes(), "disk_free": disk.free, "disk_total": disk.total}
