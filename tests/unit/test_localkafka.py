"""The local broker launcher's own logic (the broker itself is exercised by every integration test)."""

from unittest import mock

from tenantry.localkafka import broker


def test_cluster_ids_never_look_like_an_option():
    dash_first = b"\xf8" + bytes(15)  # base64 "-AAA..."
    ids = [mock.Mock(bytes=dash_first), mock.Mock(bytes=bytes(16))]
    with mock.patch.object(broker.uuid, "uuid4", side_effect=ids):
        assert broker._cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"
