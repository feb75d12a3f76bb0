"""`make demo`: a local Kafka broker and the proxy in front of it, in the foreground until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tenantry.localkafka.broker import SERVICE_PASSWORD, SERVICE_USER, KafkaBroker, api_versions_answers

LISTEN = os.environ.get("TENANTRY_DEMO_LISTEN", "127.0.0.1:19092")


def main() -> int:
    workdir = Path(os.environ.get("TENANTRY_DEMO_DIR") or tempfile.mkdtemp(prefix="tenantry-demo-"))
    print(f"Starting a local Kafka broker in {workdir} ...", flush=True)
    broker = KafkaBroker(workdir / "kafka")
    broker.start()
    env = dict(os.environ, TENANTRY_UPSTREAM_SASL_PASSWORD=SERVICE_PASSWORD)
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tenantry.proxy.cli", "serve", "--upstream", broker.sasl_bootstrap,
         "--upstream-security-protocol", "SASL_PLAINTEXT", "--upstream-sasl-mechanism", "SCRAM-SHA-512",
         "--upstream-sasl-username", SERVICE_USER, "--listen", LISTEN],
        env=env, start_new_session=True)
    host, port = LISTEN.rsplit(":", 1)
    try:
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
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        proxy.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proxy.poll() is None:
            proxy.send_signal(signal.SIGTERM)
            try:
                proxy.wait(15)
            except subprocess.TimeoutExpired:
                proxy.kill()
        print("stopping the broker ...", flush=True)
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
