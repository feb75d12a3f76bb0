"""The proxy's upstream token source: one fetch for concurrent logins, a new token after 80% of a lifetime."""

import asyncio

import pytest

from tenantry.proxy.oauth_client import TokenError, TokenSource


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def source(answers):
    clock = Clock()
    tokens = TokenSource("https://idp.example/token", "tenantry-proxy", "secret", "kafka", clock=clock)
    grants = []

    def grant():
        grants.append(clock.now)
        return answers[len(grants) - 1]
    tokens._grant = grant  # the HTTP exchange itself is exercised against a real provider (integration)
    return tokens, clock, grants


async def test_concurrent_logins_share_one_fetch_and_the_token_is_replaced_at_80_percent():
    tokens, clock, grants = source([{"access_token": "one", "expires_in": 100},
                                    {"access_token": "two", "expires_in": 100}])
    assert await asyncio.gather(*(tokens.token() for _ in range(5))) == ["one"] * 5
    clock.now = 79.0
    assert await tokens.token() == "one"
    clock.now = 80.5
    assert await tokens.token() == "two"
    assert grants == [0.0, 80.5]


@pytest.mark.parametrize("answer", [{}, {"access_token": ""}, {"token": "x"}])
async def test_an_answer_without_a_token_is_an_error(answer):
    tokens, _, _ = source([answer])
    with pytest.raises(TokenError, match="without an access_token"):
        await tokens.token()


async def test_an_unreachable_endpoint_names_itself():
    tokens = TokenSource("http://127.0.0.1:9/token", "tenantry-proxy", "secret", "")
    with pytest.raises(TokenError, match=r"http://127.0.0.1:9/token cannot be used"):
        await tokens.token()
