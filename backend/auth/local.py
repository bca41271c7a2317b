"""AUTH_MODE=none: one person on one machine; every analysis belongs to the local owner.

Nobody signs in, so two things keep strangers out: the service listens only on a loopback
address (unless ALLOW_ANONYMOUS=1 says otherwise), and a state-changing request that a page on
another site made a visitor's browser send (its Origin header names that site) is refused.
"""
import ipaddress

from backend.auth.base import AuthMode, User
from backend.config import ConfigError
from backend.errors import ApiError
from backend.store.base import LOCAL_OWNER

LOCAL_USER = User(uid=LOCAL_OWNER)
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class LocalOwner(AuthMode):
    name = "none"

    def __init__(self, host: str, allow_anonymous: bool, cors_origins: list[str]):
        if not allow_anonymous and not is_loopback(host):
            raise ConfigError(
                f"HOST={host} is not a loopback address, and with AUTH_MODE=none anyone who reaches the service "
                "could read and delete every analysis: set AUTH_MODE=firebase, or ALLOW_ANONYMOUS=1 if that is intended")
        self.allowed_origins = {origin.rstrip("/").lower() for origin in cors_origins}

    def authenticate(self, request) -> User:
        origin = request.headers.get("Origin")
        if request.method in STATE_CHANGING and origin is not None:
            own = request.host_url.rstrip("/").lower()
            if origin.rstrip("/").lower() not in self.allowed_origins | {own}:
                raise ApiError(403, "cross_origin_refused",
                               "This service does not accept changes sent by pages of other sites (add the site to CORS_ORIGINS to allow it).")
        return LOCAL_USER
