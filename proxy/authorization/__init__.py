"""Tenant ACLs at the proxy: per-API rules (:mod:`.rules`), the error shapes of refused items
(:mod:`.shapes`) and the ACL APIs themselves (:mod:`.acl_apis`)."""
