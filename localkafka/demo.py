"""`make demo`: a local Kafka broker and the proxy in front of it, in the foreground until Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tenantry.localkafka.broker import SERVICE_PASSWORD, SERVICE_USER, KafkaBroker, api_versions_answers

LISTEN = os.environ.get("TENANTRY_DEMO_LISTEN", "127.0.0.1:19092")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Installed explicitly: a shell that starts us in the background leaves SIGINT ignored, and then
    # Python would not turn Ctrl-C into KeyboardInterrupt.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    chosen = os.environ.get("TENANTRY_DEMO_DIR")
    workdir = Path(chosen or tempfile.mkdtemp(prefix="tenantry-demo-"))
    broker = KafkaBroker(workdir / "kafka")
    proxy: subprocess.Popen[bytes] | None = None
    try:
        print(f"Starting a local Kafka broker in {workdir} ...", flush=True)
        broker.start()
        env = dict(os.environ, TENANTRY_UPSTREAM_SASL_PASSWORD=SERVICE_PASSWORD)
        proxy = subprocess.Popen(
            [sys.executable, "-m", "tenantry.proxy.cli", "serve", "--upstream", broker.sasl_bootstrap,
             "--upstream-security-protocol", "SASL_PLAINTEXT", "--upstream-sasl-mechanism", "SCRAM-SHA-512",
             "--upstream-sasl-username", SERVICE_USER, "--listen", LISTEN],
            env=env, start_new_session=True)  # its own session: we stop it in order, after Ctrl-C
        host, port = LISTEN.rsplit(":", 1)
        deadline = time.monotonic() + 30
        while not api_versions_answers(host, int(port)):
            if proxy.poll() is not None or time.monotonic() > deadline:
                print("the proxy did not start; see its log above", file=sys.stderr)
                return 1
            time.sleep(0.2)
        print(f"""
Tenantry is running.
  proxy bootstrap:  {LISTEN}   (clients connect here)
  upstream broker:  {broker.sasl_bootstrap} SASL_PLAINTEXT, {broker.bootstrap} PLAINTEXT (the proxy's side)

Try it in another terminal:
  kcat -b {LISTEN} -L                                   # every broker shown is the proxy
  echo hello | kcat -b {LISTEN} -t demo -P              # produce
  kcat -b {LISTEN} -t demo -C -e                        # consume

Press Ctrl-C to stop the proxy and the broker.
""", flush=True)
        proxy.wait()
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        if proxy is not None and proxy.poll() is None:
            proxy.send_signal(signal.SIGTERM)
            try:
                proxy.wait(15)
            except subprocess.TimeoutExpired:
                proxy.kill()
        broker.stop()
        if not chosen:
            shutil.rmtree(workdir, ignore_errors=True)  # our own throwaway folder; a chosen one is kept
        print("proxy and broker stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
