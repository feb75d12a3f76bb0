"""A producer in its own process, for load that must not share the test's GIL (the noisy neighbour).

    python loadgen.py CONFIG_JSON TOPIC SECONDS RATE  ->  prints one JSON line of what it saw
"""

from __future__ import annotations

import json
import sys
import time

from confluent_kafka import Producer

VALUE = b"v" * 1000


def produce(config: dict[str, object], topic: str, seconds: float, rate: float | None) -> dict[str, object]:
    """Produce 1 kB values at `rate` per second (flat out if None) for `seconds`."""
    # A bounded queue: flat out means as fast as acks come back, not 1 GB buffered in the client.
    producer = Producer({**config, "linger.ms": 5, "batch.size": 65536, "acks": "all",
                         "queue.buffering.max.messages": 2000})
    acked: list[tuple[float, float]] = []  # (acked at, latency)
    errors: list[str] = []

    def delivered(err: object, sent: float) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            now = time.monotonic()
            acked.append((now, now - sent))
    start = time.monotonic()
    sent = 0
    while (now := time.monotonic()) - start < seconds:
        if rate is not None and sent >= (now - start) * rate:
            producer.poll(0.0005)
            continue
        try:
            producer.produce(topic, VALUE, on_delivery=lambda e, m, t=now: delivered(e, t))
            sent += 1
        except BufferError:
            producer.poll(0.01)
        producer.poll(0)
    unsent = producer.flush(60)
    return {"start": start, "acked": acked, "errors": errors, "sent": sent, "unsent": unsent}


if __name__ == "__main__":
    config, topic, seconds, rate = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    result = produce(config, topic, seconds, rate or None)
    begin = result["start"] + 2  # past the bucket's burst
    in_window = sum(1 for t, _ in result["acked"] if begin <= t < result["start"] + seconds)
    print(json.dumps({k: v for k, v in result.items() if k != "acked"}
                     | {"acked": len(result["acked"]), "rate": in_window * len(VALUE) / (seconds - 2)}))
