"""The proxy's own OAUTHBEARER login to the brokers (KIP-768): tokens from the client-credentials grant.

One token serves every broker connection until 80% of its lifetime has passed (Kafka's default
``sasl.login.refresh.window.factor``); then the next login fetches a fresh one. Broker sessions end with
the token they began with, so the re-authentication KIP-368 asks for at 85-95% of a session always
presents a new token. Fetching blocks (urllib), so it runs in a worker thread; concurrent logins that
find the token stale wait for one fetch rather than each making their own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tenantry.upstream")
REFRESH_FACTOR = 0.8


class TokenError(Exception):
    """The token endpoint refused the proxy's credentials or could not be reached."""


class TokenSource:
    def __init__(self, endpoint: str, client_id: str, client_secret: str, scope: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._endpoint, self._client_id, self._secret, self._scope = endpoint, client_id, client_secret, scope
        self._clock = clock
        self._token = ""
        self._refresh_at = 0.0
        self._fetching: asyncio.Future[str] | None = None

    async def token(self) -> str:
        """A token with at least a fifth of its lifetime left; raises TokenError."""
        if self._token and self._clock() < self._refresh_at:
            return self._token
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(self._fetch())
        fetching = self._fetching
        try:
            return await asyncio.shield(fetching)
        finally:
            if fetching.done():
                self._fetching = None

    async def _fetch(self) -> str:
        started = self._clock()
        answer = await asyncio.get_running_loop().run_in_executor(None, self._grant)
        token, lifetime = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(token, str) or not token:
            raise TokenError(f"the token endpoint {self._endpoint} answered without an access_token")
        seconds = float(lifetime) if isinstance(lifetime, (int, float)) and lifetime > 0 else 300.0
        self._token, self._refresh_at = token, started + REFRESH_FACTOR * seconds
        log.info("fetched an upstream OAUTHBEARER token for %s, valid %.0f s", self._client_id, seconds)
        return token

    def _grant(self) -> dict[str, Any]:
        form = {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._secret}
        if self._scope:
            form["scope"] = self._scope
        request = urllib.request.Request(self._endpoint, urllib.parse.urlencode(form).encode(),
                                         {"Content-Type": "application/x-www-form-urlencoded",
                                          "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                body = json.load(answer)
        except urllib.error.HTTPError as exc:
            raise TokenError(f"the token endpoint {self._endpoint} refused the proxy's client "
                             f"{self._client_id} (HTTP {exc.code})") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TokenError(f"the token endpoint {self._endpoint} cannot be used: {exc}") from None
        if not isinstance(body, dict):
            raise TokenError(f"the token endpoint {self._endpoint} answered something else than a JSON object")
        return body
