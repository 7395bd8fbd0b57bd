"""A claimed job as a handler sees it."""

from __future__ import annotations

import datetime
import threading
from typing import Any, Callable, Dict, List, Optional, cast

from .errors import JobCancelled

#: Why a job was stopped before its handler finished.
#: ``cancelled``: cancelled through the API (its heartbeat answered 409 "was cancelled").
#: ``lease_lost``: PIE no longer counts this attempt as ours (the lease expired, the job was
#: handed to another worker, or it finished some other way).
#: ``timeout``: the job passed its deadline; it is reported as a failure with code ``timeout``.
#: ``shutdown``: the worker was told to stop at once (a second SIGTERM/SIGINT, or
#: ``Worker.stop(force=True)``); PIE runs the job again when its lease expires.
STOP_REASONS = ("cancelled", "lease_lost", "timeout", "shutdown")


class Job:
    """One attempt of one job, handed to the handler.

    The envelope's fields are attributes (``job.input``, ``job.features``, ``job.config``...);
    ``job.envelope`` is the whole envelope as PIE sent it.

    ``job.cancelled`` is a ``threading.Event`` that is set when the handler should stop working
    (``job.stop_reason`` says why); nothing the handler returns afterwards is reported, except
    after a deadline, which is reported as a failure. Poll ``job.is_cancelled()``, sleep with
    ``job.wait(seconds)`` (which wakes early on a cancel), call ``job.raise_if_cancelled()``
    between steps, or register ``job.add_cancel_callback(fn)`` to stop work running elsewhere.
    """

    def __init__(self, envelope: Dict[str, Any]) -> None:
        self.envelope: Dict[str, Any] = envelope
        self.cancelled = threading.Event()
        self.stop_reason: Optional[str] = None
        self.stop_message: Optional[str] = None
        self._lock = threading.Lock()
        self._callbacks: List[Callable[[], None]] = []

    # The envelope's fields.
    @property
    def job_id(self) -> str:
        return str(self.envelope["job_id"])

    @property
    def attempt(self) -> int:
        return int(self.envelope["attempt"])

    @property
    def job_type(self) -> str:
        return str(self.envelope.get("job_type", "inference"))

    @property
    def model_id(self) -> str:
        return str(self.envelope.get("model_id", ""))

    @property
    def model_version(self) -> str:
        return str(self.envelope.get("model_version", ""))

    @property
    def client_id(self) -> str:
        return str(self.envelope.get("client_id", ""))

    @property
    def domain_id(self) -> str:
        return str(self.envelope.get("domain_id", ""))

    @property
    def service_id(self) -> Optional[str]:
        value = self.envelope.get("service_id")
        return None if value is None else str(value)

    @property
    def assignment_id(self) -> str:
        return str(self.envelope.get("assignment_id", ""))

    @property
    def assignment_key(self) -> str:
        return str(self.envelope.get("assignment_key", ""))

    @property
    def config(self) -> Dict[str, Any]:
        return _object(self.envelope.get("config"))

    @property
    def input(self) -> Dict[str, Any]:
        return _object(self.envelope.get("input"))

    @property
    def features(self) -> Optional[Dict[str, Any]]:
        return as_object(self.envelope.get("features"))

    @property
    def trigger(self) -> Any:
        return self.envelope.get("trigger")

    @property
    def deadline(self) -> Optional[datetime.datetime]:
        """When PIE fails the job with ``timeout`` if it is not finished (timezone-aware)."""
        return parse_time(self.envelope.get("deadline"))

    # Cancellation.
    def is_cancelled(self) -> bool:
        return self.cancelled.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Sleeps up to `timeout` seconds, waking early when the job is cancelled; answers
        whether it was."""
        return self.cancelled.wait(timeout)

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise JobCancelled(self.stop_message or "the job was stopped")

    def add_cancel_callback(self, callback: Callable[[], None]) -> None:
        """Calls `callback()` once when the job is cancelled (at once if it already is), on the
        thread that noticed; keep it short and let it not raise."""
        with self._lock:
            if self.stop_reason is None:
                self._callbacks.append(callback)
                return
        callback()

    def _stop(self, reason: str, message: str) -> bool:
        """Marks the job stopped; the first reason wins. True when this call stopped it."""
        with self._lock:
            if self.stop_reason is not None:
                return False
            self.stop_reason = reason
            self.stop_message = message
            callbacks, self._callbacks = self._callbacks, []
        self.cancelled.set()
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a callback's fault must not keep the others from running
                pass
        return True

    def __repr__(self) -> str:
        return "Job(job_id=%r, attempt=%r, job_type=%r)" % (
            self.envelope.get("job_id"),
            self.envelope.get("attempt"),
            self.envelope.get("job_type"),
        )


def as_object(value: Any) -> Optional[Dict[str, Any]]:
    """`value` when it is a JSON object (a dict), else None."""
    return cast(Dict[str, Any], value) if isinstance(value, dict) else None


def _object(value: Any) -> Dict[str, Any]:
    return as_object(value) or {}


def stop_job(job: Job, reason: str, message: str) -> bool:
    """Stops `job` (sets `job.cancelled`) for `reason`, one of STOP_REASONS; the first reason
    wins. True when this call stopped it. For the worker and the command runner."""
    return job._stop(reason, message)  # pyright: ignore[reportPrivateUsage]


def parse_time(value: Any) -> Optional[datetime.datetime]:
    """An ISO 8601 time as PIE writes it (`2025-01-01T00:00:00.000Z`); None if unreadable."""
    if not isinstance(value, str) or value == "":
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed
