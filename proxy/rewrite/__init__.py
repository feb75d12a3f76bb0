"""Tenant rewriting: names get the tenant's hidden prefix on the way in and lose it on the way out.

- :mod:`.policy`: which APIs and versions a tenant may use (deny by default).
- :mod:`.entities`: the same entity rule applied to a decoded message (cold path).
- :mod:`.topic_ids`: which cluster topic each topic id names, so foreign ids reveal nothing.
- :mod:`.special`: APIs whose messages must be restructured (listings, embedded bytes, keys, configs).
- :mod:`.tenant`: the per-connection rewriter tying these together with the scanner's hot path.
"""
