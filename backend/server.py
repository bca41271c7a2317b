"""`python backend/app.py`: waitress, tuned for clients that hold connections or trickle bytes.

Waitress reads each request whole before a worker thread sees it, so slow or idle clients cost
a socket, not a thread. The limits below keep those sockets bounded, and the server's own
refusals (headers too large, a body over its cap, a malformed request) answer in the API's
JSON error shape instead of waitress's plain text.
"""
import json
import time

from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask

from backend.errors import CATALOGUE

THREADS = 8
CONNECTION_LIMIT = 1000  # open sockets (idle, trickling or busy) before new ones wait in the backlog
IDLE_TIMEOUT_S = 30  # a connection with no bytes moving for this long is closed
HEADER_TIMEOUT_S = 10  # a request's headers must be complete this long after its first byte
MAX_HEADER_BYTES = 64 * 1024
# waitress's refusals by status -> catalogue code
CODES = {400: "bad_request", 413: "request_entity_too_large", 431: "request_header_fields_too_large"}


class JsonErrorTask(ErrorTask):
    def execute(self):
        error = self.request.error
        code = CODES.get(error.code, CODES[400])
        body = json.dumps({"error": code, "message": CATALOGUE[code].message}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class GuardedChannel(HTTPChannel):
    """JSON errors, and a deadline for headers: a client trickling them is closed, not waited on."""

    error_task_class = JsonErrorTask
    request_began = 0.0

    def received(self, data):
        now = time.monotonic()
        if self.request is None:
            self.request_began = now
        elif not self.request.headers_finished and now - self.request_began > HEADER_TIMEOUT_S:
            self.will_close = True  # waitress closes the socket on its next pass
            return False
        return super().received(data)


def serve(app, host, port, max_body_bytes):
    """Serve until SIGINT/SIGTERM. OSError when the address cannot be bound (e.g. the port is taken)."""
    server = create_server(app, host=host, port=port, threads=THREADS, ident="",
                           connection_limit=CONNECTION_LIMIT, channel_timeout=IDLE_TIMEOUT_S,
                           cleanup_interval=5, asyncore_use_poll=True,
                           max_request_header_size=MAX_HEADER_BYTES, max_request_body_size=max_body_bytes)
    server.channel_class = GuardedChannel
    app.logger.info("serving on http://%s:%s (store: %s); stop with Ctrl+C", host, port, app.config["STORE"])
    server.run()  # returns on SIGINT, or SIGTERM (see app.main), after in-flight requests finish
