"""Backoff on 429/503 and network errors, against a small local stub of PIE (no PIE needed)."""

from __future__ import annotations

import datetime
import email.utils
import http.server
import json
import logging
import threading
import time
import unittest
from typing import Any, Dict, List, Optional, Tuple

from tests.pie_server import wait_for

from pie_worker import ClaimRefused, HttpError, Job, NetworkError, Worker
from pie_worker._http import Backoff, Request, retry_after_s

# A scripted answer: (status, headers, body); status 0 drops the connection without answering.
Scripted = Tuple[int, Dict[str, str], Any]


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a worker that hangs up (a stop ends its long poll) is no fault of the stub


class Stub:
    """An HTTP server that answers each path from its script, in order, then with its last
    entry, and records every request as (time, path, body)."""

    def __init__(self, scripts: Dict[str, List[Scripted]]) -> None:
        self.scripts = {path: list(entries) for path, entries in scripts.items()}
        self.requests: List[Tuple[float, str, Any]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                stub.requests.append((time.monotonic(), self.path, body))
                script = stub.scripts.get(self.path) or [(404, {}, {"message": "no such route"})]
                status, headers, answer = script.pop(0) if len(script) > 1 else script[0]
                if status == 0:
                    self.close_connection = True
                    self.connection.close()
                    return
                data = json.dumps(answer).encode("utf-8")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def paths(self) -> List[str]:
        return [path for _, path, _ in self.requests]

    def times(self, path: str) -> List[float]:
        return [at for at, seen, _ in self.requests if seen == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


VERSION = "/v2/models/m/versions/1/jobs"
COMPLETE = VERSION + "/100000000001/complete"
HEARTBEAT = VERSION + "/100000000001/heartbeat"


def envelope(url: str, job_id: str = "100000000001") -> Dict[str, Any]:
    return {
        "job_id": job_id,
        "job_type": "inference",
        "attempt": 1,
        "model_id": "m",
        "model_version": "1",
        "client_id": "c",
        "domain_id": "d",
        "service_id": "s",
        "assignment_id": "a",
        "assignment_key": "default",
        "config": {},
        "input": {"x": 2},
        "features": {"route": "r1"},
        "trigger": None,
        "deadline": "2999-01-01T00:00:00.000Z",
        "callback": {
            "url": "%s%s/%s/complete" % (url, VERSION, job_id),
            "heartbeat_url": "%s%s/%s/heartbeat" % (url, VERSION, job_id),
            "token": "callback-token",
        },
    }


class BackoffTest(unittest.TestCase):
    def test_the_wait_doubles_with_jitter_up_to_the_cap(self) -> None:
        low = Backoff(1.0, 8.0, rand=lambda: 0.0)
        self.assertEqual([low.next_delay() for _ in range(6)], [0.5, 1.0, 2.0, 4.0, 4.0, 4.0])
        high = Backoff(1.0, 8.0, rand=lambda: 0.999999)
        delays = [high.next_delay() for _ in range(5)]
        for got, step in zip(delays, [1.0, 2.0, 4.0, 8.0, 8.0]):
            self.assertAlmostEqual(got, step, places=4)
        high.reset()
        self.assertAlmostEqual(high.next_delay(), 1.0, places=4)
        jittered = Backoff(1.0, 30.0)
        self.assertGreater(len({round(jittered.next_delay(), 6) for _ in range(5)}), 1)

    def test_retry_after_is_a_floor(self) -> None:
        backoff = Backoff(1.0, 30.0, rand=lambda: 0.0)
        self.assertEqual(backoff.next_delay(retry_after=3.0), 3.0)
        self.assertEqual(backoff.next_delay(retry_after=0.2), 1.0)

    def test_retry_after_reads_seconds_and_http_dates(self) -> None:
        self.assertEqual(retry_after_s("2"), 2.0)
        self.assertEqual(retry_after_s(" 0 "), 0.0)
        self.assertIsNone(retry_after_s(None))
        self.assertIsNone(retry_after_s("soon"))
        self.assertEqual(retry_after_s("-5"), 0.0)
        self.assertEqual(retry_after_s("999999"), 300.0)
        now = time.time()
        when = email.utils.format_datetime(
            datetime.datetime.fromtimestamp(now + 10, datetime.timezone.utc), usegmt=True
        )
        seconds = retry_after_s(when, now=now)
        assert seconds is not None
        self.assertAlmostEqual(seconds, 10.0, delta=1.0)


class RetryAgainstStubTest(unittest.TestCase):
    def setUp(self) -> None:
        logging.getLogger("pie_worker").setLevel(logging.CRITICAL)
        self.stubs: List[Stub] = []

    def tearDown(self) -> None:
        for stub in self.stubs:
            stub.close()

    def stub(self, scripts: Dict[str, List[Scripted]]) -> Stub:
        stub = Stub(scripts)
        self.stubs.append(stub)
        return stub

    def start_worker(
        self, stub: Stub, handler: Any, **options: Any
    ) -> Tuple[Worker, threading.Thread, List[BaseException]]:
        worker = Worker(
            stub.url, "worker-token", "m", "1", lease_s=5, wait_s=0, handle_signals=False,
            backoff_min_s=0.2, backoff_max_s=1.0, **options
        )
        errors: List[BaseException] = []

        def run() -> None:
            try:
                worker.run(handler)
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return worker, thread, errors

    def test_claims_and_completions_wait_out_429_and_503_then_go_on(self) -> None:
        stub = self.stub({})
        job = envelope(stub.url)
        stub.scripts = {
            VERSION + "/claim": [
                (429, {"retry-after": "1"}, {"success": False, "message": "too many requests"}),
                (503, {}, {"success": False, "message": "shutting down; claim again shortly"}),
                (200, {}, {"jobs": [job]}),
                (200, {}, {"jobs": []}),
            ],
            COMPLETE: [
                (503, {"retry-after": "1"}, {"success": False, "message": "unavailable"}),
                (0, {}, None),  # the connection drops: a network error
                (200, {}, {"job_id": "100000000001", "status": "success", "triggered_events": []}),
            ],
        }
        handled: List[Job] = []

        def handler(claimed: Job) -> Dict[str, Any]:
            handled.append(claimed)
            return {"double": claimed.input["x"] * 2}

        worker, thread, errors = self.start_worker(stub, handler)
        try:
            wait_for("three completions", lambda: len(stub.times(COMPLETE)) == 3, 15)
        finally:
            worker.stop()
            thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assertEqual(errors, [])
        self.assertEqual([job.job_id for job in handled], ["100000000001"])

        claims = stub.times(VERSION + "/claim")
        self.assertGreaterEqual(len(claims), 3)
        self.assertGreaterEqual(claims[1] - claims[0], 0.95, "Retry-After: 1 was not honoured")
        # The 503 had no Retry-After: the backoff's second step (0.2 s doubled, halved by jitter).
        self.assertGreaterEqual(claims[2] - claims[1], 0.19)
        self.assertLess(claims[2] - claims[1], 1.2)

        completes = stub.times(COMPLETE)
        self.assertGreaterEqual(completes[1] - completes[0], 0.95, "Retry-After: 1 was not honoured")
        self.assertLess(completes[2] - completes[1], 1.2)
        bodies = [body for _, path, body in stub.requests if path.endswith("/complete")]
        self.assertEqual(bodies[-1], {"status": "success", "attempt": 1, "output": {"double": 4}})
        claim_body = [body for _, path, body in stub.requests if path.endswith("/claim")][0]
        self.assertEqual(claim_body["max_jobs"], 1)
        self.assertEqual(claim_body["lease_s"], 5)
        self.assertEqual(claim_body["wait_ms"], 0)

    def test_a_refused_claim_stops_the_worker_without_retrying(self) -> None:
        stub = self.stub({VERSION + "/claim": [(401, {}, {"success": False, "message": "bad token"})]})
        worker, thread, errors = self.start_worker(stub, lambda job: {})
        thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0], ClaimRefused)
        self.assertEqual(getattr(errors[0], "status"), 401)
        self.assertIn("bad token", str(errors[0]))
        self.assertEqual(len(stub.requests), 1)

    def test_a_completion_refused_with_409_is_not_retried(self) -> None:
        stub = self.stub({})
        stub.scripts = {
            VERSION + "/claim": [(200, {}, {"jobs": [envelope(stub.url)]}), (200, {}, {"jobs": []})],
            COMPLETE: [(409, {}, {"success": False, "message": "stale"})],
        }
        worker, thread, _ = self.start_worker(stub, lambda job: {})
        try:
            wait_for("the completion", lambda: len(stub.times(COMPLETE)) == 1)
            time.sleep(0.5)
        finally:
            worker.stop()
            thread.join(10)
        self.assertEqual(len(stub.times(COMPLETE)), 1)

    def test_a_heartbeat_409_cancels_the_job_and_nothing_is_reported(self) -> None:
        stub = self.stub({})
        stub.scripts = {
            VERSION + "/claim": [(200, {}, {"jobs": [envelope(stub.url)]}), (200, {}, {"jobs": []})],
            HEARTBEAT: [
                (200, {}, {"job_id": "100000000001", "attempt": 1, "status": "dispatched"}),
                (409, {}, {"success": False, "message": 'job "1" was cancelled; stop working on it'}),
            ],
        }
        reasons: List[Optional[str]] = []

        def handler(job: Job) -> Dict[str, Any]:
            job.wait(10)
            reasons.append(job.stop_reason)
            return {}

        worker, thread, _ = self.start_worker(stub, handler, heartbeat_s=0.2)
        try:
            wait_for("the handler to stop", lambda: len(reasons) == 1, 10)
        finally:
            worker.stop()
            thread.join(10)
        self.assertEqual(reasons, ["cancelled"])
        self.assertEqual(len(stub.times(HEARTBEAT)), 2)
        self.assertEqual(stub.times(COMPLETE), [])
        beat = [body for _, path, body in stub.requests if path.endswith("/heartbeat")][0]
        self.assertEqual(beat, {"attempt": 1, "lease_s": 5})

    def test_mark_running_sends_a_running_heartbeat_first(self) -> None:
        stub = self.stub({})
        stub.scripts = {
            VERSION + "/claim": [(200, {}, {"jobs": [envelope(stub.url)]}), (200, {}, {"jobs": []})],
            HEARTBEAT: [(200, {}, {"status": "running"})],
            COMPLETE: [(200, {}, {"status": "success"})],
        }
        release = threading.Event()

        def handler(job: Job) -> Dict[str, Any]:
            release.wait(5)
            return {}

        worker, thread, _ = self.start_worker(stub, handler, mark_running=True)
        try:
            wait_for("the running heartbeat", lambda: len(stub.times(HEARTBEAT)) == 1)
            release.set()
            wait_for("the completion", lambda: len(stub.times(COMPLETE)) == 1)
        finally:
            release.set()
            worker.stop()
            thread.join(10)
        beat = [body for _, path, body in stub.requests if path.endswith("/heartbeat")][0]
        self.assertEqual(beat, {"attempt": 1, "lease_s": 5, "status": "running"})

    def test_stop_ends_a_long_poll_at_once(self) -> None:
        release = threading.Event()

        class Slow(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                release.wait(30)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = QuietServer(("127.0.0.1", 0), Slow)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            worker = Worker(
                "http://127.0.0.1:%d" % server.server_address[1], "t", "m", "1",
                wait_s=20, handle_signals=False,
            )
            thread = threading.Thread(target=worker.run, args=(lambda job: {},), daemon=True)
            thread.start()
            time.sleep(0.3)
            stopped = time.monotonic()
            worker.stop()
            thread.join(5)
            self.assertFalse(thread.is_alive())
            self.assertLess(time.monotonic() - stopped, 1.0)
        finally:
            release.set()
            server.shutdown()
            server.server_close()

    def test_requests_name_network_errors_and_http_errors(self) -> None:
        stub = self.stub({"/x": [(503, {"retry-after": "7"}, {"success": False, "message": "later"})]})
        answer = Request("POST", stub.url + "/x", body={}).send()
        error = answer.error()
        self.assertIsInstance(error, HttpError)
        self.assertEqual((error.status, error.retry_after, error.message), (503, 7.0, "503 later"))
        stub.close()
        self.stubs.remove(stub)
        with self.assertRaises(NetworkError):
            Request("POST", stub.url + "/x", body={}, timeout_s=2).send()


if __name__ == "__main__":
    unittest.main()
