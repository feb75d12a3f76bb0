"""Hand-checked entity marks the schemas' ``entityType`` annotations lack.

Each key is (message name, dotted field path). Checked against Kafka 4.3.1's schemas by reading every
field named Host, Port, NodeId/BrokerId next to them, and every list of topic names.
"""

from __future__ import annotations

#: A broker address the proxy must rewrite: the node id that owns it, its host and its port.
#: Order inside each struct is NodeId (or BrokerId), Host, Port in every one of these schemas.
_ADDRESS_STRUCTS: dict[str, tuple[str, ...]] = {
    "MetadataResponse": ("Brokers",),
    "FindCoordinatorResponse": ("", "Coordinators"),
    "DescribeClusterResponse": ("Brokers",),
    "ProduceResponse": ("NodeEndpoints",),
    "FetchResponse": ("NodeEndpoints",),
    "ShareFetchResponse": ("NodeEndpoints",),
    "ShareAcknowledgeResponse": ("NodeEndpoints",),
}

ENTITY_OVERRIDES: dict[tuple[str, str], str] = {}
for _message, _paths in _ADDRESS_STRUCTS.items():
    for _path in _paths:
        _prefix = f"{_path}." if _path else ""
        _id = "BrokerId" if _message == "DescribeClusterResponse" else "NodeId"
        ENTITY_OVERRIDES[(_message, _prefix + _id)] = "addressNodeId"
        ENTITY_OVERRIDES[(_message, _prefix + "Host")] = "addressHost"
        ENTITY_OVERRIDES[(_message, _prefix + "Port")] = "addressPort"

# Topic names the schemas do not mark (kafka-protocol guide): they still name a tenant's topics.
ENTITY_OVERRIDES.update({
    ("ShareGroupHeartbeatRequest", "SubscribedTopicNames"): "topicName",
    ("StreamsGroupHeartbeatRequest", "Topology.Subtopologies.SourceTopics"): "topicName",
    ("StreamsGroupHeartbeatRequest", "Topology.Subtopologies.RepartitionSinkTopics"): "topicName",
})


def entity_for(message: str, path: str, name: str, type_: str, declared: str | None) -> str | None:
    """The entity a field names: the hand-checked list first, then the schema's mark, then four rules.

    Topic ids are never marked in the schemas, and broker error messages quote names the proxy must
    translate, so every uuid field called TopicId and every ErrorMessage string get an entity too.
    Metrics count error codes and the records in record batches without decoding, so every int16
    ErrorCode and every records field is marked as well.
    """
    if (message, path) in ENTITY_OVERRIDES:
        return ENTITY_OVERRIDES[(message, path)]
    if declared:
        return declared
    if name == "TopicId" and type_ == "uuid":
        return "topicId"
    if name == "ErrorMessage" and type_ == "string":
        return "errorMessage"
    if name == "ErrorCode" and type_ == "int16":
        return "errorCode"
    if type_ == "records":
        return "records"
    return None
