"""A broker that appears later in a response gets its listener before that response is delivered."""

import asyncio

from tenantry.localkafka.broker import free_port
from tenantry.proxy.config import load_config
from tenantry.proxy.server import ProxyServer


async def test_a_new_broker_gets_a_listener_on_base_plus_its_node_id():
    base = free_port() - 7
    config = load_config(None, {"upstream": "127.0.0.1:1", "listen": f"127.0.0.1:{free_port()}",
                                "broker_port_base": str(base)}, {})
    server = ProxyServer(config)
    pending = server.learn_brokers([(7, "kafka-7.internal", 9092)])
    assert pending is not None
    await pending
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", base + 7)
        writer.close()
        assert server.brokers[7] == ("kafka-7.internal", 9092)
        assert server.learn_brokers([(7, "kafka-7.internal", 9092)]) is None  # known: nothing to wait for
    finally:
        for listener in server.listeners.values():
            listener.close()


async def test_no_coordinator_answers_do_not_open_listeners():
    config = load_config(None, {"upstream": "127.0.0.1:1", "listen": f"127.0.0.1:{free_port()}"}, {})
    server = ProxyServer(config)
    assert server.learn_brokers([(-1, "", -1)]) is None
    assert server.listeners == {}
