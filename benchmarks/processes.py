"""Start a Kafka-speaking server process for a benchmark, wait until it answers, and always stop it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import psutil

from tenantry.localkafka.broker import api_versions_answers
from tenantry.localkafka.processes import stop_process


@contextmanager
def serving(args: list[str], port: int, log_path: Path, what: str, env: Mapping[str, str] | None = None,
            startup_seconds: float = 60) -> Iterator[subprocess.Popen[bytes]]:
    """Run `args` (output to `log_path`) until it answers ApiVersions on `port`; SIGTERM it on the way out."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + startup_seconds
            while not api_versions_answers("127.0.0.1", port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not start; see {log_path}")
                time.sleep(0.2)
            yield process
        finally:
            stop_process(process, 60)


def usage(pid: int) -> tuple[float, int]:
    """(CPU seconds so far, RSS bytes) of a process."""
    p = psutil.Process(pid)
    cpu = p.cpu_times()
    return cpu.user + cpu.system, p.memory_info().rss


class Measured(Protocol):
    def usage(self) -> tuple[float, int]: ...


class Served:
    """A peer proxy process and its bootstrap address, measured like ours."""

    def __init__(self, process: subprocess.Popen[bytes], bootstrap: str) -> None:
        self.process, self.bootstrap = process, bootstrap

    def usage(self) -> tuple[float, int]:
        return usage(self.process.pid)
