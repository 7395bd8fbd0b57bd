"""The exceptions of pie_worker: those a handler raises, and those the worker raises."""

from __future__ import annotations

from typing import Any, Dict, Optional


class JobFailed(Exception):
    """Raise from a handler to fail the job with this error object: `{"code", "message", ...}`.

    Any other exception fails the job too, with code ``handler_error``; raise this one to choose
    the code and add details (they must be JSON values)::

        raise JobFailed("bad_input", "horizon_min must be positive", horizon_min=-5)
    """

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.details = details

    @property
    def error(self) -> Dict[str, Any]:
        """The error object the completion sends."""
        body: Dict[str, Any] = dict(self.details)
        body["code"] = self.code
        body["message"] = self.message
        return body


class JobCancelled(Exception):
    """Raised by `Job.raise_if_cancelled()`. A handler may let it escape: a job that was stopped
    (cancelled, its lease lost, the worker shutting down) is not reported as a failure."""


class PieError(Exception):
    """A request to PIE did not succeed."""


class NetworkError(PieError):
    """PIE could not be reached, or the connection broke (worth retrying)."""


class RequestAborted(PieError):
    """The request was ended on purpose (the worker is stopping)."""


class HttpError(PieError):
    """PIE answered with an error status; `message` carries PIE's own explanation."""

    def __init__(
        self,
        status: int,
        message: str,
        retry_after: Optional[float] = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.body = body


class ClaimRefused(HttpError):
    """PIE refused a claim with a 4xx other than 408/429 (a bad token, an unknown model version):
    retrying will not help, so the worker stops."""
