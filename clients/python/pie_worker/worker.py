"""The pull worker: claims jobs of one model version, runs a handler per job with heartbeats
keeping its lease, and reports each result through the job's own callback token."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import traceback
import urllib.parse
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union, cast

from ._http import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    Backoff,
    Request,
    error_retry_after,
    is_transient,
)
from .errors import ClaimRefused, JobFailed, PieError, RequestAborted
from .job import Job, as_object, stop_job

#: What a handler is: called with each job on its own thread; returns the output (a dict that
#: JSON can encode, or None for ``{}``) or raises to fail the job.
Handler = Callable[[Job], Optional[Dict[str, Any]]]
#: A bearer token, or a function giving one (called before every claim, so it may renew it).
TokenSource = Union[str, Callable[[], str]]

#: How many times a completion is sent before the worker gives up (as `pie worker`).
COMPLETION_TRIES = 6
#: After a forced stop, how long `run()` waits for handlers to notice before it returns anyway.
FORCE_GRACE_S = 5.0
#: Of a failing handler's traceback, the last this many characters go into the job's error.
TRACEBACK_TAIL_CHARS = 2048
#: Stop reasons after which nothing is reported: the attempt is no longer (or soon not) ours.
_UNREPORTED = ("cancelled", "lease_lost", "shutdown")

_Completion = Tuple[str, Dict[str, Any]]


class Worker:
    """A pull worker for one model version.

    ``Worker(base_url, token, model_id, model_version, concurrency=4).run(handler)`` claims up to
    `concurrency` jobs at a time with long polls (``wait_s``, at most 30), runs
    ``handler(job)`` for each on its own thread, heartbeats every ``heartbeat_s`` (a third of
    ``lease_s`` unless given) so the lease holds, and completes each job through its callback
    token: a returned dict is the output of a ``success``; an exception is a ``failure``
    (``JobFailed`` chooses the error, anything else is ``handler_error``).

    A cancel through the API reaches the handler at the next heartbeat, which PIE answers 409:
    ``job.cancelled`` is set and the result is not reported. ``stop()`` (or SIGTERM/SIGINT when
    ``run()`` is on the main thread) stops claiming, lets the jobs in hand finish and report, and
    makes ``run()`` return; a second one (or ``stop(force=True)``) cancels the jobs in hand too,
    leaving them to their leases. A claim answered 429, 503 (or any 5xx, 408) or a network
    failure is retried with exponential backoff and jitter, waiting at least any Retry-After.
    """

    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        model_id: str,
        model_version: str,
        concurrency: int = 1,
        lease_s: int = 60,
        wait_s: float = 20.0,
        *,
        worker_id: Optional[str] = None,
        heartbeat_s: Optional[float] = None,
        mark_running: bool = False,
        backoff_min_s: float = BACKOFF_MIN_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        completion_tries: int = COMPLETION_TRIES,
        handle_signals: bool = True,
        logger: Optional[logging.Logger] = None,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an absolute http(s) URL, got %r" % base_url)
        _check_int("concurrency", concurrency, 1, 100)
        _check_int("lease_s", lease_s, 5, 3600)
        if not 0 <= wait_s <= 30:
            raise ValueError("wait_s must be from 0 to 30, got %r" % wait_s)
        if heartbeat_s is not None and heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be positive, got %r" % heartbeat_s)
        if completion_tries < 1:
            raise ValueError("completion_tries must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.model_id = model_id
        self.model_version = model_version
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.wait_ms = int(round(wait_s * 1000))
        self.worker_id = worker_id or "%s-%d" % (socket.gethostname(), os.getpid())
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else lease_s / 3.0
        self.mark_running = mark_running
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.completion_tries = completion_tries
        self.handle_signals = handle_signals
        self.log = logger or logging.getLogger("pie_worker")
        self._token: Callable[[], str] = token if callable(token) else (lambda: token)
        self._claim_url = "%s/v2/models/%s/versions/%s/jobs/claim" % (
            self.base_url,
            urllib.parse.quote(model_id, safe=""),
            urllib.parse.quote(model_version, safe=""),
        )
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._forced = threading.Event()
        self._claim_request: Optional[Request] = None
        self._jobs: Set[Job] = set()
        self._signals = 0

    # Stopping.
    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self, force: bool = False) -> None:
        """Stops claiming (a claim waiting in a long poll ends at once); the jobs in hand finish
        and report. With `force`, those jobs are cancelled too (``stop_reason == "shutdown"``)
        and left to their leases. Safe from any thread; a stopped worker stays stopped."""
        self._stopping.set()
        with self._cond:
            request = self._claim_request
            jobs: List[Job] = list(self._jobs) if force else []
            if force:
                self._forced.set()
            self._cond.notify_all()
        if request is not None:
            request.abort()
        for job in jobs:
            stop_job(job, "shutdown", "the worker is stopping")

    # The claim loop.
    def run(self, handler: Handler, once: bool = False) -> None:
        """Claims and runs jobs until `stop()` (or a signal); with `once`, after one claim.

        Returns once every job in hand has finished and reported. Raises ``ClaimRefused`` when
        PIE refuses a claim with a 4xx (a wrong token, an unknown model version) and, with
        `once`, the ``PieError`` of a claim that failed at all.
        """
        restore = self._install_signal_handlers() if self.handle_signals else None
        try:
            self._loop(handler, once)
        finally:
            if restore is not None:
                restore()

    def _loop(self, handler: Handler, once: bool) -> None:
        self.log.info(
            "worker %s claiming %s@%s from %s (concurrency %d)",
            self.worker_id,
            self.model_id,
            self.model_version,
            self.base_url,
            self.concurrency,
        )
        backoff = Backoff(self.backoff_min_s, self.backoff_max_s)
        failed: Optional[PieError] = None
        while not self._stopping.is_set():
            with self._cond:
                free = self.concurrency - len(self._jobs)
                if free <= 0:
                    self._cond.wait(1.0)
                    continue
            try:
                envelopes = self._claim(free)
                backoff.reset()
            except RequestAborted:
                # A claim aborted by the stop may have taken jobs PIE now waits on; their leases
                # expire and they run again, which is cheaper than ignoring the stop for wait_ms.
                break
            except ClaimRefused as error:
                if self._stopping.is_set():
                    break
                self.log.error("claim refused: %s", error.message)
                failed = error
                break
            except PieError as error:
                if self._stopping.is_set():
                    break
                if once:
                    self.log.error("claim failed: %s", error)
                    failed = error
                    break
                delay = backoff.next_delay(error_retry_after(error))
                self.log.warning("claim failed: %s; retrying in %.1fs", error, delay)
                self._stopping.wait(delay)
                continue
            for envelope in envelopes:
                self._start_job(envelope, handler)
            if once:
                break
        self._wait_for_jobs()
        if failed is not None:
            raise failed

    def _claim(self, max_jobs: int) -> List[Dict[str, Any]]:
        request = Request(
            "POST",
            self._claim_url,
            token=self._token(),
            body={
                "worker_id": self.worker_id,
                "max_jobs": max_jobs,
                "wait_ms": self.wait_ms,
                "lease_s": self.lease_s,
            },
            # A server that holds the long poll well past wait_ms counts as a network failure.
            timeout_s=self.wait_ms / 1000.0 + 30.0,
        )
        with self._cond:
            if self._stopping.is_set():
                raise RequestAborted("the worker is stopping")
            self._claim_request = request
        try:
            answer = request.send()
        finally:
            with self._cond:
                self._claim_request = None
        if not answer.ok:
            error = answer.error()
            if 400 <= answer.status < 500 and not is_transient(answer.status):
                raise ClaimRefused(answer.status, error.message, error.retry_after, error.body)
            raise error
        jobs: Any = (as_object(answer.body) or {}).get("jobs")
        if not isinstance(jobs, list):
            raise PieError("the claim answer has no jobs list")
        envelopes = [as_object(envelope) for envelope in cast(List[Any], jobs)]
        return [envelope for envelope in envelopes if envelope is not None]

    def _start_job(self, envelope: Dict[str, Any], handler: Handler) -> None:
        job = Job(envelope)
        with self._cond:
            self._jobs.add(job)
            forced = self._forced.is_set()
        if forced:
            stop_job(job, "shutdown", "the worker is stopping")
        thread = threading.Thread(
            target=self._run_job, args=(job, handler), name="pie-job-%s" % job.job_id
        )
        thread.daemon = True
        thread.start()

    def _wait_for_jobs(self) -> None:
        forced_at: Optional[float] = None
        with self._cond:
            while self._jobs:
                if self._forced.is_set():
                    if forced_at is None:
                        forced_at = time.monotonic()
                    remaining = FORCE_GRACE_S - (time.monotonic() - forced_at)
                    if remaining <= 0:
                        self.log.warning(
                            "%d job(s) still running after the stop; PIE retries them when "
                            "their lease expires",
                            len(self._jobs),
                        )
                        return
                    self._cond.wait(min(remaining, 1.0))
                else:
                    self._cond.wait(1.0)

    # One job.
    def _run_job(self, job: Job, handler: Handler) -> None:
        try:
            self._run_job_inner(job, handler)
        except Exception:  # the worker's own fault: log it, keep the loop alive
            self.log.exception("job %s: the worker failed", job.job_id)
        finally:
            with self._cond:
                self._jobs.discard(job)
                self._cond.notify_all()

    def _run_job_inner(self, job: Job, handler: Handler) -> None:
        started = time.monotonic()
        label = "job %s attempt %s" % (job.job_id, job.attempt)
        done = threading.Event()
        beats = threading.Thread(
            target=self._keep_alive, args=(job, done), name="pie-heartbeat-%s" % job.job_id
        )
        beats.daemon = True
        beats.start()
        result: _Completion
        try:
            result = _success(handler(job))
        except JobFailed as failure:
            result = ("failure", _jsonable_error(failure))
        except Exception as error:
            result = ("failure", _handler_error(error))
        finally:
            done.set()
        took = "%.1fs" % (time.monotonic() - started)

        reason = job.stop_reason
        if reason in _UNREPORTED:
            self.log.info(
                "%s: stopped after %s, not reported (%s); its lease decides what next",
                label,
                took,
                job.stop_message or reason,
            )
            return
        if reason == "timeout" and result[1].get("code") != "timeout":
            result = ("failure", {"code": "timeout", "message": "the job passed its deadline"})
        accepted = self._complete(job, result)
        status, details = result
        summary = (
            "success"
            if status == "success"
            else "failure (%s: %s)" % (details.get("code", "error"), details.get("message", ""))
        )
        self.log.info(
            "%s: %s in %s%s",
            label,
            summary,
            took,
            "" if accepted else "; the completion was not accepted",
        )

    def _keep_alive(self, job: Job, done: threading.Event) -> None:
        """Heartbeats until the handler is done; stops the job at its deadline."""
        deadline = job.deadline
        deadline_ts = deadline.timestamp() if deadline is not None else None
        if self.mark_running and not done.is_set():
            self._heartbeat(job, running=True)
        while True:
            wait = self.heartbeat_s
            if deadline_ts is not None:
                wait = max(0.0, min(wait, deadline_ts - time.time()))
            if done.wait(wait) or job.is_cancelled():
                return
            if deadline_ts is not None and time.time() >= deadline_ts:
                self.log.warning("job %s: passed its deadline; stopping the handler", job.job_id)
                stop_job(job, "timeout", "the job passed its deadline")
                return
            self._heartbeat(job)

    def _heartbeat(self, job: Job, running: bool = False) -> None:
        """Extends the lease. A 4xx (other than 408/429) means the attempt is no longer ours
        (cancelled, lease lost, already final): the job is stopped and nothing is reported."""
        callback = _callback(job)
        body: Dict[str, Any] = {"attempt": job.attempt, "lease_s": self.lease_s}
        if running:
            body["status"] = "running"
        request = Request(
            "POST",
            callback["heartbeat_url"],
            token=callback["token"],
            body=body,
            timeout_s=min(30.0, max(2.0, self.heartbeat_s)),
        )
        try:
            answer = request.send()
        except PieError as error:
            self.log.warning("job %s: heartbeat failed (%s)", job.job_id, error)
            return
        if answer.ok:
            return
        message = answer.message()
        if 400 <= answer.status < 500 and not is_transient(answer.status):
            cancelled = answer.status == 409 and "cancelled" in message
            self.log.warning(
                "job %s: heartbeat refused (%s); stopping the handler", job.job_id, message
            )
            stop_job(
                job, "cancelled" if cancelled else "lease_lost", "heartbeat refused: " + message
            )
        else:
            self.log.warning("job %s: heartbeat failed (%s)", job.job_id, message)

    def _complete(self, job: Job, result: _Completion) -> bool:
        """Posts the result, retrying network errors, 408, 429 and 5xx with backoff (at least any
        Retry-After); True when PIE accepted it."""
        status, details = result
        body: Dict[str, Any] = {"status": status, "attempt": job.attempt}
        body["output" if status == "success" else "error"] = details
        callback = _callback(job)
        backoff = Backoff(self.backoff_min_s, self.backoff_max_s)
        for attempt in range(1, self.completion_tries + 1):
            retry_after: Optional[float] = None
            try:
                answer = Request("POST", callback["url"], callback["token"], body).send()
                if answer.ok:
                    return True
                error = answer.error()
                if not is_transient(answer.status):
                    self.log.warning(
                        "job %s: completion refused (%s)", job.job_id, error.message
                    )
                    return False
                problem, retry_after = error.message, error.retry_after
            except PieError as error:
                problem = str(error)
            if attempt == self.completion_tries:
                self.log.error(
                    "job %s: completion failed %d times (%s); giving up",
                    job.job_id,
                    attempt,
                    problem,
                )
                return False
            delay = backoff.next_delay(retry_after)
            self.log.warning(
                "job %s: completion failed (%s); retrying in %.1fs", job.job_id, problem, delay
            )
            if self._forced.wait(delay):
                self.log.warning("job %s: not reported: the worker is stopping", job.job_id)
                return False
        return False

    # Signals.
    def _install_signal_handlers(self) -> Optional[Callable[[], None]]:
        """SIGINT/SIGTERM stop the worker while `run()` runs; only on the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return None
        previous: Dict[int, Any] = {}

        def on_signal(signum: int, _frame: Optional[FrameType]) -> None:
            # A signal handler runs between two bytecodes of the main thread, maybe inside a
            # lock this worker holds: it only counts, and a thread does the rest.
            self._signals += 1
            thread = threading.Thread(
                target=self._on_signal, args=(signum, self._signals), name="pie-worker-signal"
            )
            thread.daemon = True
            thread.start()

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

        return restore

    def _on_signal(self, signum: int, count: int) -> None:
        name = signal.Signals(signum).name
        if count == 1:
            self.log.info("%s: no new claims; waiting for running jobs (again to stop them)", name)
            self.stop()
        else:
            self.log.warning(
                "%s: stopping running jobs; PIE retries them when their lease expires", name
            )
            self.stop(force=True)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError("%s must be an integer from %d to %d, got %r" % (name, low, high, value))


def _callback(job: Job) -> Dict[str, str]:
    callback = as_object(job.envelope.get("callback")) or {}
    url: Any = callback.get("url")
    if not isinstance(url, str):
        raise PieError("job %s came without a callback" % job.job_id)
    heartbeat_url: Any = callback.get("heartbeat_url")
    if not isinstance(heartbeat_url, str):
        # An envelope without one: the heartbeat route sits beside the completion route.
        heartbeat_url = url[: -len("complete")] + "heartbeat" if url.endswith("/complete") else url
    return {"url": url, "heartbeat_url": heartbeat_url, "token": str(callback.get("token", ""))}


def _success(returned: Any) -> _Completion:
    """A handler's return value as a completion: a JSON object, or a failure saying why not."""
    output = as_object({} if returned is None else returned)
    if output is None:
        return (
            "failure",
            {
                "code": "invalid_output",
                "message": "the handler returned %s, not a dict (a JSON object)"
                % type(returned).__name__,
            },
        )
    try:
        json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as error:
        return (
            "failure",
            {"code": "invalid_output", "message": "the output is not JSON: %s" % error},
        )
    return ("success", output)


def _jsonable_error(failure: JobFailed) -> Dict[str, Any]:
    error = failure.error
    try:
        json.dumps(error, allow_nan=False)
    except (TypeError, ValueError):
        # Details JSON cannot carry are dropped; the code and message still are.
        return {"code": str(failure.code), "message": str(failure.message)}
    return error


def _handler_error(error: Exception) -> Dict[str, Any]:
    text = str(error)
    name = type(error).__name__
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return {
        "code": "handler_error",
        "message": "%s: %s" % (name, text) if text else name,
        "exception": name,
        "traceback": trace[-TRACEBACK_TAIL_CHARS:],
    }
