"""`make demo`: a local Kafka broker, the proxy and two demo tenants, in the foreground until Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tenantry.localkafka.broker import AUTHORIZER, SERVICE_PASSWORD, SERVICE_USER, KafkaBroker, api_versions_answers
from tenantry.localkafka.processes import stop_process

LISTEN = os.environ.get("TENANTRY_DEMO_LISTEN", "127.0.0.1:19092")
METRICS = os.environ.get("TENANTRY_DEMO_METRICS", "127.0.0.1:19644")
#: Throwaway credentials of the demo tenants, printed for the user to paste; never use them elsewhere.
DEMO_USERS = {"alice": ("acme", "alice-secret"), "bob": ("globex", "bob-secret")}


def write_demo_tenants(config: Path) -> None:
    """Two tenants made with the operator CLI, as an operator would."""
    cli = [sys.executable, "-m", "tenantry.proxy.cli"]
    for user, (tenant, password) in DEMO_USERS.items():
        # kcat cannot create topics: the demo tenants create them by using them
        subprocess.run([*cli, "tenant", "add", tenant, "--allow-auto-create-topics", "--config", str(config)],
                       check=True, capture_output=True)
        for mechanism in ("SCRAM-SHA-512", "PLAIN"):  # PLAIN for Debian's kcat, see kcat_login
            subprocess.run([*cli, "user", "add", tenant, user, "--mechanism", mechanism, "--config", str(config)],
                           input=password + "\n", text=True, check=True, capture_output=True)
    # acme's topics named secret-* have their records encrypted at the proxy, keys in a file beside the config
    keys = config.with_name("tenant-keys.json")
    subprocess.run([*cli, "encryption", "enable", "acme", "--topics", "secret-*", "--key-store", str(keys),
                    "--config", str(config)], check=True, capture_output=True)


def kcat_login(user: str) -> str:
    # Debian's kcat is built on librdkafka 2.0.2, whose SCRAM fails even against Kafka itself, so the
    # printed commands log in with PLAIN; newer clients use SCRAM-SHA-512 with the same password.
    return (f"kcat -b {LISTEN} -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN "
            f"-X sasl.username={user} -X sasl.password={DEMO_USERS[user][1]}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Installed explicitly: a shell that starts us in the background leaves SIGINT ignored, and then
    # Python would not turn Ctrl-C into KeyboardInterrupt.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    chosen = os.environ.get("TENANTRY_DEMO_DIR")
    workdir = Path(chosen or tempfile.mkdtemp(prefix="tenantry-demo-"))
    broker = KafkaBroker(workdir / "kafka", extra_properties=AUTHORIZER)  # tenants reach it as their own users
    proxy: subprocess.Popen[bytes] | None = None
    try:
        print(f">> starting a local Kafka broker in {workdir} (about 10 s)", flush=True)
        broker.start()
        config = workdir / "tenantry.toml"
        print(">> adding the demo tenants acme and globex with the tenantry CLI", flush=True)
        write_demo_tenants(config)
        print(f">> starting the proxy on {LISTEN}", flush=True)
        env = dict(os.environ, TENANTRY_UPSTREAM_SASL_PASSWORD=SERVICE_PASSWORD)
        proxy = subprocess.Popen(
            [sys.executable, "-m", "tenantry.proxy.cli", "serve", "--config", str(config),
             "--listener-security-protocol", "SASL_PLAINTEXT", "--upstream", broker.sasl_bootstrap,
             "--upstream-security-protocol", "SASL_PLAINTEXT", "--upstream-sasl-mechanism", "SCRAM-SHA-512",
             "--upstream-sasl-username", SERVICE_USER, "--listen", LISTEN, "--metrics-listen", METRICS,
             "--probe-tenants", "acme"],
            env=env, start_new_session=True)  # its own session: we stop it in order, after Ctrl-C
        host, port = LISTEN.rsplit(":", 1)
        deadline = time.monotonic() + 30
        while not api_versions_answers(host, int(port)):
            if proxy.poll() is not None or time.monotonic() > deadline:
                print("the proxy did not start; see its log above", file=sys.stderr)
                return 1
            time.sleep(0.2)
        alice, bob = kcat_login("alice"), kcat_login("bob")
        script = Path(sys.executable).with_name("tenantry")
        tenantry = str(script) if script.exists() else f"{sys.executable} -m tenantry.proxy.cli"
        print(f"""
Tenantry is running with two tenants, each of which believes it has its own Kafka.
  proxy bootstrap:  {LISTEN}  (SASL_PLAINTEXT; SCRAM-SHA-512 or PLAIN)
  tenant acme:      user alice, password alice-secret
  tenant globex:    user bob, password bob-secret
  tenants file:     {config}  (edit it with `tenantry tenant|user ... --config` while this runs)
  upstream broker:  {broker.bootstrap} PLAINTEXT (the proxy's side; tenants never see it)

Try it in another terminal. Both tenants use the topic name "orders":
  echo "from acme" | {alice} -t orders -P -X allow.auto.create.topics=true
  echo "from globex" | {bob} -t orders -P -X allow.auto.create.topics=true
  {alice} -t orders -C -e          # acme reads only its own message
  {alice} -L                       # acme's topics; every broker is the proxy
  kcat -b {broker.bootstrap} -L | grep orders   # the broker holds acme.orders and globex.orders

Records of acme's topics named secret-* are encrypted at the proxy (`tenantry encryption enable`):
  echo "card 4111 1111 1111 1111" | {alice} -t secret-cards -P -X allow.auto.create.topics=true
  {alice} -t secret-cards -C -e       # acme reads its record back as it wrote it
  kcat -b {broker.bootstrap} -t acme.secret-cards -C -e -f 'headers %h, value of %S bytes\\n'
  kcat -b {broker.bootstrap} -t acme.secret-cards -C -e | grep -c 4111   # 0: the broker holds no plaintext

Quotas change live. Hold acme to 100 kB/s of produce, then time 2 MB (about 20 s; globex stays fast).
`tenantry reload` makes the proxy apply the file now (it also notices within a few seconds by itself):
  {tenantry} quota set acme --produce-bytes-per-sec 100000 --config {config}
  {tenantry} reload --url {METRICS}
  time (head -c 1500000 /dev/urandom | base64 -w 1000 | {alice} -t orders -P -z none)
  {tenantry} quota show acme --config {config}
  {tenantry} quota set acme --produce-bytes-per-sec 0 --config {config}   # 0 removes it
  {tenantry} reload --url {METRICS}

Watch it as an operator (acme also runs the end-to-end probe, on its topic tenantry-probe):
  {tenantry} status --url http://{METRICS}
  curl -s http://{METRICS}/metrics | grep -E '^tenantry_(bytes_in|records_in|probe_up)'
  curl -s http://{METRICS}/readyz

Press Ctrl-C to stop the proxy and the broker.
""", flush=True)
        proxy.wait()
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        if proxy is not None:
            stop_process(proxy, 15)
        broker.stop()
        if not chosen:
            shutil.rmtree(workdir, ignore_errors=True)  # our own throwaway folder; a chosen one is kept
        print("proxy and broker stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
