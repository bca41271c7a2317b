"""The C-STORE SCP (pynetdicom): where scanners and the PACS send series.

It accepts associations only from the calling AE titles in DICOM_ALLOWED_AES (any, when the list is
empty: loopback only, see settings), answers C-ECHO, and offers only CT Image Storage and Enhanced
CT Image Storage, in the transfer syntaxes the decoders read (instances.TRANSFER_SYNTAXES): a peer
proposing another SOP class, or only another encoding, gets that presentation context rejected.
Each instance is read whole (instances.read) before the collector keeps it, with a way to tell whether its
association is still open (its series is not complete before it ends); a damaged or cut-short
one, or one whose data set is not CT, is refused with its C-STORE status and nothing is stored. An
association silent for TIMEOUT_S (before the request, between PDUs, or waiting for a reply) is
aborted, so a stalled peer holds a thread for that long at most.
"""

import logging

from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, EnhancedCTImageStorage, Verification

from backend.dicom import instances
from backend.dicom.collector import Collector

TIMEOUT_S = 30.0
MAX_ASSOCIATIONS = 8
# C-STORE statuses (PS3.4 B.2.3)
SUCCESS, OUT_OF_RESOURCES, DOES_NOT_MATCH_SOP_CLASS, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xA900, 0xC000
STATUS = {
    instances.UNREADABLE: CANNOT_UNDERSTAND,
    instances.NOT_CT: DOES_NOT_MATCH_SOP_CLASS,
    instances.SYNTAX: CANNOT_UNDERSTAND,
}

log = logging.getLogger(__name__)
logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # it logs every association and PDU at INFO


class Listener:
    """One pynetdicom AE serving on an address; `start` raises OSError when the address cannot be bound."""

    def __init__(self, ae_title: str, allowed_aes: list[str], collector: Collector, timeout_s: float = TIMEOUT_S):
        self.collector = collector
        self.ae = AE(ae_title=ae_title)
        self.ae.require_calling_aet = list(allowed_aes)
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = timeout_s
        self.ae.maximum_associations = MAX_ASSOCIATIONS
        for sop_class in (CTImageStorage, EnhancedCTImageStorage):
            self.ae.add_supported_context(sop_class, list(instances.TRANSFER_SYNTAXES))
        self.ae.add_supported_context(Verification)
        self.server = None

    def start(self, host: str, port: int):
        self.server = self.ae.start_server(
            (host, port),
            block=False,
            evt_handlers=[
                (evt.EVT_CONN_OPEN, self._on_connection),
                (evt.EVT_C_STORE, self._on_store),
                (evt.EVT_REJECTED, self._on_rejected),
            ],
        )
        self.collector.start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.collector.stop()

    def _on_connection(self, event):
        """pynetdicom puts the network timeout on the listening socket only: an accepted one blocks, and a peer
        that sends the first bytes of a PDU and stops would hold its thread forever."""
        event.assoc.dul.socket.socket.settimeout(self.ae.network_timeout)

    def _on_store(self, event) -> int:
        calling = event.assoc.requestor.ae_title
        try:
            instance = instances.read(event.encoded_dataset(include_meta=True))
        except instances.Refused as refused:
            log.warning("C-STORE from %s refused: %s", calling, refused)
            return STATUS[refused.kind]
        try:
            self.collector.receive(instance, calling, event.assoc.is_alive)
        except Exception:
            log.exception("C-STORE from %s: the instance could not be kept", calling)
            return OUT_OF_RESOURCES
        return SUCCESS

    @staticmethod
    def _on_rejected(event):
        log.warning(
            "DICOM association from %s (%s) rejected: calling AE title not allowed",
            event.assoc.requestor.ae_title,
            event.assoc.requestor.address,
        )
