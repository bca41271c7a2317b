"""A per-owner limit on POST /analyze (RATE_LIMIT), kept by `limits`, the library under Flask-Limiter.

The route calls `check(caller)` right after authenticating, so the limit counts per owner
whatever address the requests come from. Counters live in memory by default (one process);
RATE_LIMIT_STORAGE_URI=redis://... shares them between several instances. By default only
accounts are limited: with AUTH_MODE=none the one local user's own loop over a folder is not.
"""
import math
import time

from flask import current_app
from limits import parse_many, storage, strategies
from limits.errors import ConfigurationError

from backend.config import ConfigError
from backend.errors import NotAllowed


def init_app(app):
    app.extensions["rate_limit"] = None
    if not app.config["RATE_LIMIT"]:
        return
    limits = parse_many(app.config["RATE_LIMIT"])  # checked by the settings
    try:
        counters = storage.storage_from_string(app.config["RATE_LIMIT_STORAGE_URI"])
    except ConfigurationError as exc:
        raise ConfigError(f"RATE_LIMIT_STORAGE_URI can't be used: {exc}") from None
    app.extensions["rate_limit"] = (strategies.MovingWindowRateLimiter(counters), limits)


def check(caller, scope="analyze"):
    """Count one request of `caller`; NotAllowed (429) with Retry-After once over any of the limits."""
    if current_app.extensions["rate_limit"] is None:
        return
    limiter, limits = current_app.extensions["rate_limit"]
    for limit in limits:
        if not limiter.hit(limit, scope, caller.uid):
            reset_at = limiter.get_window_stats(limit, scope, caller.uid).reset_time
            retry_after = max(1, math.ceil(reset_at - time.time()))
            raise NotAllowed("rate_limited", limit=limit, retry_after=retry_after,
                             headers={"Retry-After": str(retry_after)})
