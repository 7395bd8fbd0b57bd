"""The Worker against a real PIE: many jobs, a failing handler, a cancel reaching the handler."""

from __future__ import annotations

import logging
import threading
import time
import unittest
from typing import Any, Dict, List, Optional

from tests.pie_server import Pie, Tenant, pie, start_soon, wait_for

from pie_worker import Job, JobFailed, Worker

LEASE_S = 5  # the least PIE takes: heartbeats every 5/3 s
start_soon()  # PIE starts while the tests that need none run


class RunningWorker:
    """A Worker running `handler` on a thread, stopped by `stop()`."""

    def __init__(self, server: Pie, tenant: Tenant, handler: Any, **options: Any) -> None:
        settings: Dict[str, Any] = {"concurrency": 1, "lease_s": LEASE_S, "wait_s": 1.0}
        settings.update(options)
        self.worker = Worker(
            server.url,
            server.worker_token(tenant),
            tenant.model_id,
            tenant.version,
            handle_signals=False,
            **settings,
        )
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, args=(handler,), daemon=True)
        self.thread.start()

    def _run(self, handler: Any) -> None:
        try:
            self.worker.run(handler)
        except BaseException as error:  # reported by stop()
            self.error = error

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(30)
        if self.thread.is_alive():
            raise AssertionError("the worker did not stop")
        if self.error is not None:
            raise self.error


class WorkerTest(unittest.TestCase):
    server: Pie

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = pie()
        logging.getLogger("pie_worker").setLevel(logging.CRITICAL)

    def test_200_jobs_with_concurrency_4_all_succeed_with_the_handlers_output(self) -> None:
        server = self.server
        tenant = server.create_tenant()
        batch = server.ok(
            "POST",
            tenant.domain_path + "/jobs/batch",
            {
                "assignment_key": "default",
                "jobs": [{"service_id": "service-1", "input": {"n": n}} for n in range(200)],
            },
        )
        self.assertEqual(len(batch["job_ids"]), 200)

        lock = threading.Lock()
        in_flight = [0, 0]  # now, most at once

        def handler(job: Job) -> Dict[str, Any]:
            with lock:
                in_flight[0] += 1
                in_flight[1] = max(in_flight[1], in_flight[0])
            try:
                time.sleep(0.005)
                features = job.features or {}
                return {
                    "n": job.input["n"],
                    "square": job.input["n"] ** 2,
                    "route": features.get("route"),
                    "capacity": features.get("capacity"),
                    "attempt": job.attempt,
                }
            finally:
                with lock:
                    in_flight[0] -= 1

        started = time.monotonic()
        running = RunningWorker(server, tenant, handler, concurrency=4)
        try:
            wait_for(
                "200 successes",
                lambda: server.ok(
                    "GET", "%s/batches/%s" % (tenant.domain_path, batch["batch_id"])
                )["counts"]["success"]
                == 200,
                timeout_s=60,
            )
        finally:
            running.stop()
        took = time.monotonic() - started

        jobs = server.list_jobs(tenant, "batch_id=" + batch["batch_id"])
        self.assertEqual(len(jobs), 200)
        for job in jobs:
            self.assertEqual(job["status"], "success", job)
            n = job["input"]["n"]
            self.assertEqual(
                job["output"],
                {"n": n, "square": n * n, "route": "r1", "capacity": 60, "attempt": 1},
            )
        self.assertEqual(sorted(job["input"]["n"] for job in jobs), list(range(200)))
        self.assertLessEqual(in_flight[1], 4)
        self.assertGreater(in_flight[1], 1, "the jobs never ran side by side")
        print("\n  200 jobs, concurrency 4: %.2fs (%s)" % (took, server.backend), end=" ")

    def test_a_failing_handler_fails_its_job_with_the_error(self) -> None:
        server = self.server
        tenant = server.create_tenant()
        crashing = server.run_job(tenant, {"crash": True})
        refused = server.run_job(tenant, {"refuse": True})
        fine = server.run_job(tenant, {"ok": True})
        bad_output = server.run_job(tenant, {"list": True})

        def handler(job: Job) -> Any:
            if job.input.get("crash"):
                raise ValueError("horizon_min must be positive")
            if job.input.get("refuse"):
                raise JobFailed("bad_input", "no route to score", route=None)
            if job.input.get("list"):
                return [1, 2]
            return {"ok": True}

        running = RunningWorker(server, tenant, handler, concurrency=2)
        try:
            wait_for(
                "four final jobs",
                lambda: all(
                    server.get_job(tenant, job_id)["status"] in ("success", "failure")
                    for job_id in (crashing, refused, fine, bad_output)
                ),
            )
        finally:
            running.stop()

        crashed = server.get_job(tenant, crashing)
        self.assertEqual(crashed["status"], "failure")
        self.assertEqual(crashed["attempt"], 1)
        error = crashed["error"]
        self.assertEqual(error["code"], "handler_error")
        self.assertEqual(error["message"], "ValueError: horizon_min must be positive")
        self.assertEqual(error["exception"], "ValueError")
        self.assertIn("horizon_min must be positive", error["traceback"])
        self.assertIn("Traceback", error["traceback"])

        refusal = server.get_job(tenant, refused)
        self.assertEqual(refusal["status"], "failure")
        self.assertEqual(
            refusal["error"], {"code": "bad_input", "message": "no route to score", "route": None}
        )
        self.assertEqual(server.get_job(tenant, fine)["output"], {"ok": True})
        listed = server.get_job(tenant, bad_output)
        self.assertEqual(listed["status"], "failure")
        self.assertEqual(listed["error"]["code"], "invalid_output")

    def test_a_cancel_reaches_the_handler_within_one_heartbeat(self) -> None:
        server = self.server
        tenant = server.create_tenant()
        job_id = server.run_job(tenant, {"long": True})
        started = threading.Event()
        seen: List[float] = []
        reasons: List[Optional[str]] = []

        def handler(job: Job) -> Dict[str, Any]:
            started.set()
            if job.wait(30):
                seen.append(time.monotonic())
                reasons.append(job.stop_reason)
            return {"finished": "although cancelled"}

        running = RunningWorker(server, tenant, handler)
        try:
            self.assertTrue(started.wait(20), "the handler never got the job")
            time.sleep(0.3)  # so the cancel falls between two heartbeats
            cancelled_at = time.monotonic()
            server.ok("POST", "%s/jobs/%s/cancel" % (tenant.domain_path, job_id), expect=(200,))
            wait_for("the handler to see the cancel", lambda: len(seen) == 1, timeout_s=15)
        finally:
            running.stop()

        interval = running.worker.heartbeat_s
        noticed = seen[0] - cancelled_at
        print(
            "\n  cancel noticed after %.2fs (heartbeat every %.2fs, %s)"
            % (noticed, interval, server.backend),
            end=" ",
        )
        # One heartbeat interval, plus the heartbeat's own round trip.
        self.assertLessEqual(noticed, interval + 1.0)
        self.assertEqual(reasons, ["cancelled"])
        job = server.get_job(tenant, job_id)
        self.assertEqual(job["status"], "cancelled")
        self.assertIsNone(job.get("output"))  # the handler's late answer was not reported

    def test_a_deadline_stops_the_handler_and_fails_the_job(self) -> None:
        server = self.server
        tenant = server.create_tenant({"timeout_s": 2})
        job_id = server.run_job(tenant)
        reasons: List[Optional[str]] = []

        def handler(job: Job) -> Dict[str, Any]:
            job.wait(20)
            reasons.append(job.stop_reason)
            return {"late": True}

        # Heartbeats every 5 s: the deadline (2 s after the job was created) comes first.
        running = RunningWorker(server, tenant, handler, lease_s=15)
        try:
            wait_for(
                "the job to fail",
                lambda: server.get_job(tenant, job_id)["status"] == "failure",
                timeout_s=15,
            )
            wait_for("the handler to stop", lambda: len(reasons) == 1, timeout_s=5)
        finally:
            running.stop()
        self.assertEqual(reasons, ["timeout"])
        self.assertEqual(server.get_job(tenant, job_id)["error"]["code"], "timeout")


if __name__ == "__main__":
    unittest.main()
