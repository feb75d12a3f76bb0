"""ssl.principal.mapping.rules, checked against the examples of Kafka's documentation and its
SslPrincipalMapperTest."""

import pytest

from tenantry.tenants.principal_rules import PrincipalRuleError, map_principal, parse_rules


@pytest.mark.parametrize(("rules", "subject", "name"), [
    ("DEFAULT", "CN=alice,OU=payments,O=Example", "CN=alice,OU=payments,O=Example"),
    ("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=kafka1,OU=ServiceUsers,O=Org", "kafka1"),
    ("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=adminUser,OU=Admin,O=Org", "CN=adminUser,OU=Admin,O=Org"),
    ("RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,DEFAULT",
     "CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Palo Alto,ST=CA,C=US", "duke@javasoft"),
    ("RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/U", "CN=Duke,OU=JavaSoft,O=Sun,L=PA,ST=CA,C=US",
     "DUKE@JAVASOFT"),
    ("RULE:^CN=([^,]+),.*$/$1/, RULE:^CN=([^,]+)$/$1/", "CN=solo", "solo"),
    ("RULE:^CN=([^,]+),OU=tenant-a$/$1/", "CN=bob,OU=tenant-b", None),  # no rule matches: no one
    ("RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L", "OU=x,CN=Mixed.Case", "mixed.case"),
])
def test_kafkas_examples(rules, subject, name):
    assert map_principal(parse_rules(rules), subject) == name


@pytest.mark.parametrize("rules", ["", "RULE:^CN=(.*)$/$1", "RULE:[/x/", "DEFAULTS", "RULE:^CN=(.*)$/$1/Q",
                                   "DEFAULT,,DEFAULT"])
def test_malformed_rules_are_refused(rules):
    with pytest.raises(PrincipalRuleError):
        parse_rules(rules)


def test_a_pattern_must_match_the_whole_subject():
    """As Java's Matcher.matches(): a rule for CN=bob must not map CN=bobby,... by matching a prefix."""
    assert map_principal(parse_rules("RULE:CN=bob/bob/"), "CN=bobby,O=Example") is None
