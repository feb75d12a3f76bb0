"""Peer proxies run beside Tenantry in the benchmarks, from Maven Central jars."""
