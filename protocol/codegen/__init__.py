"""Generates ``tenantry.protocol.messages`` from Apache Kafka's official JSON message schemas."""
