"""`tenantry serve --workers N`: N processes serving the same listeners, one event loop (one core) each.

Each worker is the same command line with `--worker-index I`; the kernel spreads new connections over
the workers' SO_REUSEPORT listeners. Workers share quotas and limits as any replicas do, through
quota_coordination = kafka (each is a replica, host:pid). This parent only supervises: it restarts a
worker that exits unexpectedly, passes SIGHUP on, and on SIGTERM or SIGINT drains them all.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from types import FrameType

log = logging.getLogger("tenantry.workers")
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 30.0
STABLE_AFTER = 60.0  # a worker that ran this long and then died starts again after FIRST_BACKOFF


class Supervisor:
    def __init__(self, command: list[str], workers: int, drain_seconds: float) -> None:
        self.command = command
        self.count = workers
        self.drain_seconds = drain_seconds
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self._started: dict[int, float] = {}
        self._backoff = dict.fromkeys(range(workers), FIRST_BACKOFF)
        self._restart_at: dict[int, float] = {}
        self._stopping = False

    def _start(self, index: int) -> None:
        process = subprocess.Popen([*self.command, "--worker-index", str(index)])
        self.processes[index], self._started[index] = process, time.monotonic()
        log.info("worker %d started (pid %d)", index, process.pid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            for process in self.processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGHUP)
        else:
            self._stopping = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        for index in range(self.count):
            self._start(index)
        while not self._stopping:
            time.sleep(0.2)
            self._watch(time.monotonic())
        return self._drain()

    def _watch(self, now: float) -> None:
        for index, process in self.processes.items():
            code = process.poll()
            if code is None or index in self._restart_at:
                continue
            if now - self._started[index] > STABLE_AFTER:
                self._backoff[index] = FIRST_BACKOFF
            delay = self._backoff[index]
            self._backoff[index] = min(delay * 2, MAX_BACKOFF)
            self._restart_at[index] = now + delay
            log.error("worker %d (pid %d) exited with %s; starting it again in %.0f s", index, process.pid, code, delay)
        for index, when in list(self._restart_at.items()):
            if now >= when:
                del self._restart_at[index]
                self._start(index)

    def _drain(self) -> int:
        log.info("draining %d workers", len(self.processes))
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.drain_seconds + 15  # each drains for up to shutdown_timeout_seconds
        failed = 0
        for index, process in self.processes.items():
            try:
                code = process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d (pid %d) did not stop in time; killing it", index, process.pid)
                process.kill()
                code = process.wait()
            # A worker still starting when the signal came has no handler yet: SIGTERM's default is its clean stop.
            failed += code not in (0, -signal.SIGTERM) and index not in self._restart_at
        log.info("all workers stopped")
        return 1 if failed else 0


def worker_command(argv: list[str]) -> list[str]:
    """The command line a worker runs: this one, as a module of this interpreter."""
    return [sys.executable, "-m", "tenantry.proxy.cli", *argv]
