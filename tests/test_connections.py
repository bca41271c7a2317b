"""Connection exhaustion (issue 10): idle and slowly trickling connections held open by one client
must not make the service hang for everyone else. Real sockets on loopback against the real
server process; every loop is bounded and every socket is closed at the end.
"""
import contextlib
import json
import socket
import threading
import time
from urllib.parse import urlsplit

from tests.fixtures.data import dicom_file
from tests.fixtures.http import multipart

IDLE, TRICKLING = 200, 50
TRICKLE_INTERVAL_S = 0.3
ANSWER_WITHIN_S = 2.0


def _connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _trickle(sockets, stop: threading.Event):
    """Send one byte of a never-ending request header on every socket, every TRICKLE_INTERVAL_S (at most 5 minutes)."""
    header = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100_000
    for position in range(len(header)):
        if stop.wait(TRICKLE_INTERVAL_S) or position * TRICKLE_INTERVAL_S > 300:
            return
        for sock in list(sockets):
            try:
                sock.send(header[position:position + 1])
            except OSError:  # the server gave up on this one: that is allowed
                sockets.remove(sock)


def _timed_request(port, method, path, body=b"", headers=None):
    """(seconds, status, parsed JSON) on a fresh connection, giving up after ANSWER_WITHIN_S."""
    import http.client

    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_WITHIN_S)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        payload = response.read()
        return time.monotonic() - started, response.status, json.loads(payload)
    except (TimeoutError, socket.timeout) as exc:
        raise AssertionError(f"{method} {path} got no answer within {ANSWER_WITHIN_S} s") from exc
    finally:
        connection.close()


def test_health_and_analyze_answer_with_250_idle_and_trickling_connections_open(live_server):
    data = dicom_file("693_UNCR.dcm").read_bytes()
    body, headers = multipart("file", "slice.dcm", data)
    port = urlsplit(live_server).port
    # warm up: the first analysis loads what it needs
    _timed_request(port, "POST", "/analyze", body, headers)

    stop = threading.Event()
    with contextlib.ExitStack() as cleanup:
        idle = [cleanup.enter_context(_connect(port)) for _ in range(IDLE)]
        trickling = [cleanup.enter_context(_connect(port)) for _ in range(TRICKLING)]
        trickler = threading.Thread(target=_trickle, args=(list(trickling), stop), daemon=True)
        trickler.start()
        cleanup.callback(trickler.join, 10)
        cleanup.callback(stop.set)
        time.sleep(2)  # let the trickle start and the server see every connection

        for _ in range(3):
            seconds, status, answer = _timed_request(port, "GET", "/health")
            assert status == 200 and answer["status"] == "ok"
            assert seconds < ANSWER_WITHIN_S
            seconds, status, answer = _timed_request(port, "POST", "/analyze", body, headers)
            assert status == 201, answer
            assert seconds < ANSWER_WITHIN_S
        assert len(idle) == IDLE

    # everything closed: the service is still there for the next client
    seconds, status, _ = _timed_request(port, "GET", "/health")
    assert status == 200
