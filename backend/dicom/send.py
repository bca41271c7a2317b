"""The results to the PACS: C-STORE (pynetdicom) to `AE@host:port`, or STOW-RS to an `http(s)://` DICOMweb base.

`attempt` makes one try. A PACS that cannot be reached, is busy or failing (no connection, a transient
association rejection, out of resources, HTTP 5xx, 408, 429) leaves the delivery pending, to be tried again
after `wait_after` (doubling: 1 s, 2 s, ... at most 30 s; the study runner schedules it, holding no worker
meanwhile). A refusal that retrying will not change (a permanent association rejection, a C-STORE error
status, HTTP 4xx, some instances failed) fails it. The answer is what the study stores as `results_delivery`.
STOW-RS goes through urllib rather than dicomweb-client: that client's requests session has no timeout, and a PACS
that accepts the connection and never answers must not hold a worker past TIMEOUT_S; the files go as they are kept.
"""

import base64
import io
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import pydicom
from pynetdicom import AE

from backend.dicom import dicomweb
from backend.dicom.settings import Destination

TIMEOUT_S = 30.0  # one attempt's connection, association and each reply
FIRST_WAIT_S, LONGEST_WAIT_S = 1.0, 30.0
C_STORE_SUCCESS = (0x0000, 0xB000, 0xB006, 0xB007)  # success, and the warnings under which the instance is stored
TRANSIENT_HTTP = (408, 429)


@dataclass(frozen=True)
class Delivery:
    """`results_delivery` as the study stores it: state pending, sent or failed; `to` without any password; the
    error that failed it, or (pending) that the last attempt met; how many attempts were made."""

    state: str
    to: str
    error: str | None = None
    attempts: int = 0

    def as_dict(self) -> dict:
        return {"state": self.state, "to": self.to, "error": self.error, "attempts": self.attempts}


class Permanent(Exception):
    """The PACS refused in a way that sending again will not change."""


class Transient(Exception):
    """The PACS could not take the results now."""


def pending(destination: Destination) -> Delivery:
    return Delivery("pending", destination.shown)


def attempt(files: list[bytes], destination: Destination, calling_ae: str) -> Delivery:
    """One try at sending the DICOM files (SR and key images, as kept) to `destination`: sent, failed (a refusal
    retrying will not change) or pending with the error (try again later)."""
    try:
        if destination.url:
            _stow(files, destination)
        else:
            _c_store(files, destination, calling_ae)
        return Delivery("sent", destination.shown)
    except Permanent as exc:
        return Delivery("failed", destination.shown, str(exc))
    except (Transient, OSError) as exc:  # OSError: refused, unreachable, timed out, reset
        return Delivery("pending", destination.shown, str(exc) or type(exc).__name__)


def wait_after(attempts: int) -> float:
    """Seconds before the next attempt, after `attempts` that could not send."""
    return min(FIRST_WAIT_S * 2 ** max(0, attempts - 1), LONGEST_WAIT_S)


def _c_store(files: list[bytes], destination: Destination, calling_ae: str):
    datasets = [pydicom.dcmread(io.BytesIO(data)) for data in files]
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = TIMEOUT_S
    for sop_class, syntax in sorted({(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) for ds in datasets}):
        ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
    if assoc.is_rejected:
        rejection = assoc.acceptor.primitive
        reason = (
            f"{destination.ae_title} rejected the association (result {rejection.result}, reason "
            f"{rejection.diagnostic}): is {calling_ae} in its list of known nodes?"
        )
        raise (Permanent if rejection.result == 0x01 else Transient)(reason)
    if not assoc.is_established:
        raise Transient(f"no association with {destination.ae_title} at {destination.host}:{destination.port}")
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            code = status.get("Status") if status else None
            if code is None:
                how = "aborted the association at" if assoc.is_aborted else "did not answer"
                raise Transient(
                    f"{destination.ae_title} {how} the C-STORE of {ds.SOPInstanceUID} (is {calling_ae} "
                    "one of its known nodes?)"
                )
            if code not in C_STORE_SUCCESS:
                reason = f"{destination.ae_title} answered C-STORE of {ds.SOPInstanceUID} with status 0x{code:04X}"
                raise (Transient if code & 0xFF00 == 0xA700 else Permanent)(reason)
    finally:
        if assoc.is_established:
            assoc.release()


def _stow(files: list[bytes], destination: Destination):
    parts = urllib.parse.urlsplit(destination.url)
    url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl() + "/studies"
    content_type, body = dicomweb.multipart(files)
    headers = {"Content-Type": content_type, "Accept": "application/dicom+json"}
    if parts.username is not None:
        credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
            status, text = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        reason = f"{destination.shown} answered STOW-RS with HTTP {exc.code}{_failures(exc.read())}"
        raise (Transient if exc.code >= 500 or exc.code in TRANSIENT_HTTP else Permanent)(reason) from None
    if status != 200:  # 202: stored some, failed others
        raise Permanent(f"{destination.shown} answered STOW-RS with HTTP {status}{_failures(text)}")


def _failures(text: bytes) -> str:
    """The Failure Reasons of a Store Instances Response, as a clause for the error (empty when it has none)."""
    try:
        answer = pydicom.Dataset.from_json(json.loads(text))
        reasons = sorted({f"0x{item.FailureReason:04X}" for item in answer.get("FailedSOPSequence", [])})
    except Exception:  # an HTML error page, an empty body
        return ""
    return f": instances failed with reason {', '.join(reasons)}" if reasons else ""
