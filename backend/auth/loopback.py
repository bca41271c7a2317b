"""AUTH_MODE=none may only listen on a loopback address: checked from the settings alone.

Its own module, importing nothing of the app, so that gunicorn's master can run the check before
it starts workers (importing the stores there would set up the metrics before their folder exists).
"""

import ipaddress

from backend.config import ConfigError


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_open_host(host: str, allow_anonymous: bool):
    """ConfigError unless the service listens on loopback only, or ALLOW_ANONYMOUS=1 says it may not."""
    if not allow_anonymous and not is_loopback(host):
        raise ConfigError(
            f"HOST={host} is not a loopback address, and with AUTH_MODE=none anyone who reaches the service "
            "could read and delete every analysis: set AUTH_MODE=firebase, or ALLOW_ANONYMOUS=1 if that is intended"
        )
