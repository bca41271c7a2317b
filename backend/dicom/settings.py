"""DICOM settings that cannot work, found from the settings alone.

Its own module, importing nothing of the app, so that gunicorn's master can run the check before it
starts workers (as backend/auth/loopback.py does for AUTH_MODE=none).
"""

import re
import socket
import urllib.parse
from dataclasses import dataclass

from backend.config import ConfigError

# An AE title: 1 to 16 characters of the default repertoire, no backslash or control characters (PS3.5 6.2).
AE_TITLE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")
DIMSE_DESTINATION = re.compile(r"(?P<ae>[^@]+)@(?P<host>\[[^\]]+\]|[^:@]+):(?P<port>\d{1,5})")


@dataclass(frozen=True)
class Destination:
    """Where results go: a DICOM node (`ae_title`, `host`, `port`) or a DICOMweb base URL (`url`)."""

    shown: str  # for results_delivery.to and logs: the setting without any password
    ae_title: str | None = None
    host: str | None = None
    port: int | None = None
    url: str | None = None


def is_ae_title(value: str) -> bool:
    return bool(AE_TITLE.fullmatch(value)) and bool(value.strip())


def parse_destination(text: str | None) -> Destination | None:
    """DICOM_RESULTS_TO as a Destination (None when empty); ConfigError when it is neither form."""
    if not text:
        return None
    if text.lower().startswith(("http://", "https://")):
        parts = urllib.parse.urlsplit(text)
        try:
            parts.port  # noqa: B018 (urllib checks the port only when asked)
        except ValueError:
            raise ConfigError(f"DICOM_RESULTS_TO={text!r} has a port that is not a number") from None
        if not parts.hostname:
            raise ConfigError(f"DICOM_RESULTS_TO={text!r} has no host")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        shown = parts._replace(netloc=netloc, query="", fragment="").geturl()
        return Destination(shown=shown, url=text.rstrip("/"))
    match = DIMSE_DESTINATION.fullmatch(text)
    if not match or not is_ae_title(match["ae"]) or not 0 < int(match["port"]) < 65536:
        raise ConfigError(
            f"DICOM_RESULTS_TO={text!r} is neither AE@host:port (e.g. ORTHANC@pacs.example:4242) "
            "nor an http(s):// DICOMweb base URL"
        )
    return Destination(
        shown=text, ae_title=match["ae"].strip(), host=match["host"].strip("[]"), port=int(match["port"])
    )


def check_settings(config):
    """ConfigError for DICOM settings that cannot work (checked by gunicorn's master and by create_app)."""
    if not is_ae_title(config["DICOM_AE_TITLE"]):
        raise ConfigError(
            f"DICOM_AE_TITLE={config['DICOM_AE_TITLE']!r} is not an AE title: 1 to 16 printable "
            "ASCII characters, no backslash"
        )
    bad = [title for title in config["DICOM_ALLOWED_AES"] if not is_ae_title(title)]
    if bad:
        raise ConfigError(f"DICOM_ALLOWED_AES holds {bad[0]!r}, which is not an AE title")
    parse_destination(config["DICOM_RESULTS_TO"])
    if config["DICOM_RESULTS_RETRY_S"] < 0:
        raise ConfigError("DICOM_RESULTS_RETRY_S must be 0 or more seconds")
    if not config["DICOM_PORT"]:
        return
    if not 0 < config["DICOM_PORT"] < 65536:
        raise ConfigError(f"DICOM_PORT={config['DICOM_PORT']} is not a TCP port (1 to 65535)")
    if config["DICOM_STABLE_S"] <= 0:
        raise ConfigError("DICOM_STABLE_S must be more than 0 seconds")
    if config["IMAGE_STORE"] == "none":
        raise ConfigError(
            "DICOM_PORT needs an image store (IMAGE_STORE=local or gcs): received instances are kept as objects"
        )
    from backend.auth.loopback import is_loopback  # here: the backend.auth package loads Flask, send.py must not

    if not config["DICOM_ALLOWED_AES"] and not is_loopback(config["DICOM_HOST"]):
        raise ConfigError(
            f"DICOM_HOST={config['DICOM_HOST']} is not a loopback address, and with an empty DICOM_ALLOWED_AES any "
            "DICOM node that reaches it could send studies: list the calling AE titles allowed in DICOM_ALLOWED_AES"
        )


def check_port_free(config):
    """ConfigError when another program holds DICOM_PORT: the server entry points check it before the model loads
    (gunicorn's master before any worker, whose workers then take turns on the port)."""
    if not config["DICOM_PORT"]:
        return
    address = (config["DICOM_HOST"], config["DICOM_PORT"])
    with socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the listener binds it
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen for DICOM on {address[0]}:{address[1]}: {exc.strerror or exc} "
                "(set DICOM_PORT or DICOM_HOST)"
            ) from None
