"""A confined KIP-848 regex means, inside the tenant's namespace, exactly what it means on a private cluster.

The broker keeps a topic when RE2/J matches its whole name; google-re2 stands in for it here.
"""

from __future__ import annotations

import pytest
import re2
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tenantry.proxy.rewrite.regex import InvalidRegex, confine, unconfine

# A small alphabet and short names, so that random patterns match often enough to tell the two apart.
names = st.text("aAb.-_9", min_size=1, max_size=4)

_atoms = st.sampled_from(["a", "A", "b", ".", r"\.", "[a-b]", "[^a]", r"\w", r"\W", r"\d", "-", "_", "[[:alpha:]]",
                          r"\x{61}", r"\Qa.\E", "^", "$", r"\A", r"\z", r"\b", r"\B", "(?i)", "(?-i)", ""])


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map("|".join),
        inner.map(lambda r: f"({r})"),
        inner.map(lambda r: f"(?:{r})"),
        inner.map(lambda r: f"(?i:{r})"),
        inner.map(lambda r: f"(?P<n>{r})" if "(?P<n>" not in r else f"({r})"),
        st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{0,2}", "{1,}", "*?", "{1,3}?"])).map(
            lambda t: f"(?:{t[0]}){t[1]}"),
    )


regexes = st.recursive(_atoms, _extend, max_leaves=8)


def _matches(pattern: str, name: str) -> bool:
    return re2.fullmatch(pattern, name) is not None


@pytest.mark.parametrize("prefix", ["acme.", "acme_"])
@settings(max_examples=3000, deadline=None)
@given(pattern=regexes, name=names)
@example(pattern="(^.*_3664904941668954428)", name="x_3664904941668954428")
@example(pattern="(^a-notexists)|(^a-exists)", name="a-exists")
@example(pattern=r"\bab", name="ab")
@example(pattern=r"(?:^a)*b", name="ab")
@example(pattern=r"a^b", name="ab")
@example(pattern=r"(?:^|a){2}b", name="ab")
@example(pattern=r"(?:a|^)+b", name="ab")
@example(pattern=r"a\Ab|a$", name="a")
def test_the_confined_regex_matches_prefix_and_name_exactly_when_the_original_matches_name(prefix, pattern, name):
    confined = confine(pattern, prefix)
    assert _matches(confined, prefix + name) == _matches(pattern, name), confined
    assert not _matches(confined, "other." + name) and not _matches(confined, name)
    assert unconfine(confined, prefix) == pattern


@pytest.mark.parametrize("pattern", [r"x)|(.*", "(?=a)", r"\1", "a**", r"\C", "(", "[a", r"\Z"])
def test_what_re2_refuses_or_cannot_be_confined_is_invalid(pattern):
    with pytest.raises(InvalidRegex):
        confine(pattern, "acme.")


def test_an_unanchored_pattern_is_sent_as_the_tenant_wrote_it():
    assert confine(".*", "acme.") == r"acme\.(?:.*)"
    assert unconfine(r"acme\.(?:.*)", "acme.") == ".*"


def test_a_pattern_that_quotes_the_marker_still_round_trips():
    pattern = r"^a|\b\B(?:x)"
    assert unconfine(confine(pattern, "acme."), "acme.") == pattern


def test_nesting_deeper_than_the_limit_is_refused_not_a_crash():
    with pytest.raises(InvalidRegex):
        confine("(" * 200 + "^a" + ")" * 200, "acme.")
