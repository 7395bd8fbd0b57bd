"""Requests to PIE: one JSON request at a time, abortable from another thread, and the backoff
used between retries. Standard library only (http.client), so nothing needs installing."""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, Mapping, Optional

from . import __version__
from .errors import HttpError, NetworkError, PieError, RequestAborted
from .job import as_object

#: The least and the most a retry waits, as in `pie worker` (src/cli/worker/backoff.ts).
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
#: A Retry-After beyond this is read as this: a worker should not sleep for hours on one answer.
RETRY_AFTER_MAX_S = 300.0

USER_AGENT = "pie-worker-python/" + __version__


class Answer:
    """An HTTP answer: its status, headers (lower-case names) and JSON body (None if not JSON)."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Mapping[str, str], body: Any) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def message(self) -> str:
        """PIE's error message (`{"success": false, "message": ...}`), else the status line."""
        text: Any = (as_object(self.body) or {}).get("message")
        if isinstance(text, str):
            return "%d %s" % (self.status, text)
        return "%d %s" % (self.status, http.client.responses.get(self.status, ""))

    def error(self) -> HttpError:
        return HttpError(
            self.status, self.message(), retry_after_s(self.headers.get("retry-after")), self.body
        )


class Request:
    """One POST/GET of JSON. `abort()` (from any thread) ends it at once: the socket is shut down,
    so a long poll the server holds ends too, and `send()` raises RequestAborted."""

    def __init__(
        self,
        method: str,
        url: str,
        token: Optional[str] = None,
        body: Any = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.method = method
        self.url = url
        self.token = token
        self.body = body
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._aborted = False
        self._connection: Optional[http.client.HTTPConnection] = None

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            connection = self._connection
        sock = connection.sock if connection is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def send(self) -> Answer:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PieError("not an absolute http(s) URL: %r" % self.url)
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self.timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=self.timeout_s
            )
        with self._lock:
            if self._aborted:
                raise RequestAborted("the request was aborted")
            self._connection = connection
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers: Dict[str, str] = {"accept": "application/json", "user-agent": USER_AGENT}
        payload: Optional[bytes] = None
        if self.body is not None:
            payload = json.dumps(self.body, separators=(",", ":")).encode("utf-8")
            headers["content-type"] = "application/json"
        if self.token is not None:
            headers["authorization"] = "Bearer " + self.token
        try:
            connection.connect()
            if self._aborted:
                raise RequestAborted("the request was aborted")
            connection.request(self.method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            answer_headers = {name.lower(): value for name, value in response.getheaders()}
            return Answer(response.status, answer_headers, _json_or_none(raw))
        except RequestAborted:
            raise
        except (OSError, http.client.HTTPException) as error:
            if self._aborted:
                raise RequestAborted("the request was aborted") from error
            raise NetworkError("%s %s: %s" % (self.method, self.url, _describe(error))) from error
        finally:
            connection.close()


def _json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        return None


def _describe(error: BaseException) -> str:
    if isinstance(error, socket.timeout):
        return "timed out"
    text = str(error)
    return "%s: %s" % (type(error).__name__, text) if text else type(error).__name__


def is_transient(status: int) -> bool:
    """Worth trying again: rate limited (429), a timeout (408) or a server fault (5xx)."""
    return status in (408, 429) or status >= 500


def retry_after_s(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Reads a Retry-After header: delay-seconds or an HTTP date. None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


class Backoff:
    """Exponential backoff with jitter: each wait is drawn between half and all of the current
    step, which doubles from `min_s` up to `max_s` and goes back to `min_s` after a success. A
    Retry-After from PIE is a floor: the wait is never shorter than the server asked."""

    def __init__(
        self,
        min_s: float = BACKOFF_MIN_S,
        max_s: float = BACKOFF_MAX_S,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if min_s <= 0 or max_s < min_s:
            raise ValueError("backoff needs 0 < min_s <= max_s")
        self.min_s = min_s
        self.max_s = max_s
        self._rand = rand
        self._step = min_s

    def reset(self) -> None:
        self._step = self.min_s

    def next_delay(self, retry_after: Optional[float] = None) -> float:
        step = self._step
        self._step = min(step * 2, self.max_s)
        delay = step / 2 + self._rand() * step / 2
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay


def error_retry_after(error: BaseException) -> Optional[float]:
    return error.retry_after if isinstance(error, HttpError) else None
