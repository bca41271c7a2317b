"""AUTH_MODE=none: one person on one machine; every analysis belongs to the local owner.

Nobody signs in, so two things keep strangers out: the service listens only on a loopback
address (unless ALLOW_ANONYMOUS=1 says otherwise; `loopback.py`), and a state-changing request that a page on
another site made a visitor's browser send (its Origin header names that site) is refused.
"""
from backend.auth.base import AuthMode, User
from backend.errors import NotAllowed
from backend.store.base import LOCAL_OWNER

LOCAL_USER = User(uid=LOCAL_OWNER)
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


class LocalOwner(AuthMode):
    name = "none"

    def __init__(self, cors_origins: list[str]):
        """The host was checked with `refuse_open_host` (auth.check_settings) before this is made."""
        self.allowed_origins = {origin.rstrip("/").lower() for origin in cors_origins}

    def authenticate(self, request) -> User:
        origin = request.headers.get("Origin")
        if request.method in STATE_CHANGING and origin is not None:
            own = request.host_url.rstrip("/").lower()
            if origin.rstrip("/").lower() not in self.allowed_origins | {own}:
                raise NotAllowed("cross_origin_refused")
        return LOCAL_USER
