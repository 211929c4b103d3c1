"""Per-key request rate limits: a moving window of one minute per API key.

Each API key has a budget of requests per minute (its own ``rate_per_minute``
or ``api.rate_per_minute`` from the settings). A request over the budget is
refused with 429 and ``Retry-After`` (seconds until the oldest request in
the window leaves it). The window lives in this process's memory (the
``limits`` library): a gateway running several API processes multiplies
the budget by their number.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from gateway.api.auth import Caller
from gateway.errors import RateLimitedError

NAMESPACE = "cafgw-api-key"


class KeyRateLimiter:
    """Counts each key's requests; ``hit`` raises ``RateLimitedError`` past its budget."""

    def __init__(self, default_per_minute: int) -> None:
        if default_per_minute < 1:
            raise ValueError("a rate limit is at least 1 request per minute")
        self.default_per_minute = default_per_minute
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, caller: Caller) -> None:
        """Count one request of ``caller``'s key, or refuse it."""
        per_minute = caller.rate_per_minute or self.default_per_minute
        item = RateLimitItemPerMinute(per_minute)
        key = caller.key_id or f"{caller.role}:{caller.authority}"
        if self._limiter.hit(item, NAMESPACE, key):
            return
        reset_at = self._limiter.get_window_stats(item, NAMESPACE, key).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimitedError(
            f"API key {caller.key_id or '?'} is over its limit of {per_minute} requests "
            f"per minute; retry in {retry_after} s",
            retry_after,
        )
