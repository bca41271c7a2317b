"""The contract every auth mode keeps: say who is calling, and what the dashboard needs to sign in."""
from dataclasses import dataclass

from backend.errors import NotAllowed


@dataclass(frozen=True)
class User:
    """The caller: `uid` owns the analyses it creates; `admin` may read and delete everyone's."""

    uid: str
    admin: bool = False


class AuthMode:
    name = "base"

    def authenticate(self, request) -> User:
        """The caller of `request`; raise NotAllowed when it may not call at all."""
        raise NotImplementedError

    def web_config(self) -> dict:
        """What the dashboard needs to sign in (public values only), served at GET /auth/config."""
        return {"mode": self.name}

    def csp_sources(self) -> dict[str, list[str]]:
        """Origins the dashboard's Content-Security-Policy must allow beyond 'self', by directive."""
        return {}

    def close(self):
        """Release what the mode holds (tests open and close many apps)."""


def unauthorized(code: str, error: str | None = "invalid_token") -> NotAllowed:
    """Not signed in (a 401), with the challenge that tells the client, as RFC 6750 asks, to send a Bearer token."""
    challenge = f'Bearer error="{error}"' if error else "Bearer"
    return NotAllowed(code, headers={"WWW-Authenticate": challenge})
