"""The local broker launcher's own logic (the broker itself is exercised by every integration test)."""

import re
from unittest import mock

from tenantry.localkafka import broker


def test_cluster_ids_never_look_like_an_option():
    dash_first = b"\xf8" + bytes(15)  # base64 "-AAA..."
    ids = [mock.Mock(bytes=dash_first), mock.Mock(bytes=bytes(16))]
    with mock.patch.object(broker.uuid, "uuid4", side_effect=ids):
        assert broker.new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_a_tls_broker_has_mtls_on_ssl_and_maps_the_certificate_to_its_user(tmp_path):
    tls = broker.Tls(tmp_path / "bundle.pem", tmp_path / "ca.pem")
    ports = broker.Ports(port=1, sasl_port=2, controller_port=3, ssl_port=4, sasl_ssl_port=5)
    props = _props(broker._properties(tmp_path, 1, ports, "1@127.0.0.1:3", {}, 2, tls, 1))
    assert props["listeners"] == ("PLAINTEXT://127.0.0.1:1,SASL_PLAINTEXT://127.0.0.1:2,SSL://127.0.0.1:4,"
                                  "SASL_SSL://127.0.0.1:5,CONTROLLER://127.0.0.1:3")
    assert "CONTROLLER" not in props["advertised.listeners"] and props["process.roles"] == "broker,controller"
    assert props["listener.name.ssl.ssl.client.auth"] == "required"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    assert "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config" in props
    first_rule = props["ssl.principal.mapping.rules"].split(",RULE:")[0].removeprefix("RULE:")
    pattern, replacement, _ = first_rule.split("/")
    assert re.sub(pattern, replacement.replace("$1", r"\1"),
                  "CN=tenantry-proxy,O=Tenantry local cluster") == "tenantry-proxy"


def test_a_cluster_member_is_a_broker_of_the_outside_quorum_and_replicates(tmp_path):
    props = _props(broker._properties(tmp_path, 2, broker.Ports(port=1, sasl_port=2), "1000@127.0.0.1:9",
                                      {}, 2, None, 3))
    assert props["process.roles"] == "broker" and props["controller.quorum.voters"] == "1000@127.0.0.1:9"
    assert "CONTROLLER" not in props["listeners"] and "ssl.keystore.location" not in props
    assert props["default.replication.factor"] == props["offsets.topic.replication.factor"] == "3"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    controller = _props(broker._properties(tmp_path, 1000, broker.Ports(controller_port=9), "1000@127.0.0.1:9",
                                           {}, 0, None, 3))
    assert controller["process.roles"] == "controller" and controller["listeners"] == "CONTROLLER://127.0.0.1:9"
    assert "advertised.listeners" not in controller


def test_a_planned_cluster_records_every_port_and_issues_certificates_for_loopback(tmp_path):
    import json
    import ssl

    from cryptography import x509

    from tenantry.localkafka.cluster import CONTROLLER_ID, KafkaCluster

    cluster = KafkaCluster(tmp_path, brokers=3, tls=True)
    cluster._plan()
    described = json.loads((tmp_path / "cluster.json").read_text())
    assert sorted(described["brokers"]) == ["1", "2", "3"]
    assert all(set(b) == {"plaintext", "sasl_plaintext", "ssl", "sasl_ssl"} for b in described["brokers"].values())
    ports = [p for b in described["brokers"].values() for p in b.values()]
    assert len(set(ports)) == 12
    assert str(CONTROLLER_ID) in described["spec"]["ports"]
    again = KafkaCluster.load(tmp_path)
    assert again.description() == described  # a restart finds the same ports and files
    cert = x509.load_pem_x509_certificate((tmp_path / "tls" / "broker.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    context = ssl.create_default_context(cafile=described["ca_file"])
    context.load_cert_chain(described["client_certfile"], described["client_keyfile"])  # the pair matches
    assert oct((tmp_path / "tls" / "ca.key").stat().st_mode & 0o777) == "0o600"
