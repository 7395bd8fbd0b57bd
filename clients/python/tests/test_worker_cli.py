"""`python -m pie_worker` as an operator runs it, against a real PIE."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import Dict, List, Optional

from tests.pie_server import PYTHON_ROOT, Pie, Tenant, pie, start_soon, wait_for


DEMO = str(PYTHON_ROOT / "examples" / "demo_handler.py")
start_soon()  # PIE starts while the tests that need none run


class WorkerProcess:
    """`python -m pie_worker --url <PIE> --model ... <args>` with PIE_TOKEN set and none of the
    server's secrets in its environment."""

    def __init__(self, server: Pie, tenant: Tenant, args: List[str]) -> None:
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        env.pop("PIE_JWT_SECRET", None)
        env["PIE_TOKEN"] = server.worker_token(tenant)
        env["PYTHONPATH"] = str(PYTHON_ROOT)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pie_worker", "--url", server.url,
             "--model", tenant.model_id, "--version", tenant.version, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._stderr: List[str] = []
        assert self.process.stderr is not None
        self._reader = threading.Thread(
            target=lambda: self._stderr.extend(self.process.stderr or []), daemon=True
        )
        self._reader.start()

    def stderr(self) -> str:
        return "".join(self._stderr)

    def wait(self, timeout_s: float = 30) -> int:
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("the worker did not exit:\n" + self.stderr())
        self._reader.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code


class CommandWorkerTest(unittest.TestCase):
    server: Pie

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = pie()

    def test_once_runs_each_job_through_the_command_and_reports_it(self) -> None:
        server = self.server
        tenant = server.create_tenant()
        ok = [server.run_job(tenant, {"horizon_min": 15}), server.run_job(tenant, {"horizon_min": 60})]
        failing = server.run_job(tenant, {"fail": True})
        worker = WorkerProcess(
            server,
            tenant,
            ["--concurrency", "4", "--wait", "1000", "--once", "--", sys.executable, DEMO, "--stdin"],
        )
        code = worker.wait()
        stderr = worker.stderr()
        self.assertEqual(code, 0, stderr)
        self.assertIn("attempt 1: success", stderr)
        self.assertIn("attempt 1: failure (exit: ", stderr)
        for job_id in ok:
            job = server.get_job(tenant, job_id)
            self.assertEqual(job["status"], "success", job)
            self.assertEqual(job["output"]["model"], "%s@1.0.0" % tenant.model_id)
            self.assertIsInstance(job["output"]["prediction"]["delay_minutes"], float)
        failed = server.get_job(tenant, failing)
        self.assertEqual(failed["status"], "failure")
        self.assertEqual(failed["error"]["code"], "exit")
        self.assertEqual(failed["error"]["exit_code"], 3)
        self.assertIsNone(failed["error"]["signal"])
        self.assertIn("failed on purpose", failed["error"]["stderr_tail"])

    def test_a_refused_claim_exits_1(self) -> None:
        server = self.server
        tenant = server.create_tenant()
        worker = WorkerProcess(
            server,
            tenant._replace(version="9.9.9"),
            ["--wait", "0", "--", sys.executable, DEMO, "--stdin"],
        )
        self.assertEqual(worker.wait(), 1)
        self.assertIn("claim refused: 404", worker.stderr())

    def test_sigterm_finishes_the_job_in_hand_and_exits_0(self) -> None:
        server = self.server
        tenant = server.create_tenant()
        job_id = server.run_job(tenant, {"work_s": 1.5, "horizon_min": 10})
        worker = WorkerProcess(
            server, tenant, ["--lease", "5", "--wait", "20000", "--", sys.executable, DEMO, "--stdin"]
        )
        try:
            wait_for(
                "the worker to hold the job",
                lambda: server.get_job(tenant, job_id)["status"] == "dispatched",
            )
            time.sleep(0.3)  # the command is running
            worker.process.send_signal(signal.SIGTERM)
            later = server.run_job(tenant, {"after": "sigterm"})
            code = worker.wait(20)
        finally:
            if worker.process.poll() is None:
                worker.process.kill()
        stderr = worker.stderr()
        self.assertEqual(code, 0, stderr)
        self.assertIn("SIGTERM: no new claims", stderr)
        job = server.get_job(tenant, job_id)
        self.assertEqual(job["status"], "success", (job, stderr))
        self.assertEqual(job["output"]["prediction"]["horizon_min"], 10)
        self.assertEqual(server.get_job(tenant, later)["status"], "queued")

    def test_a_cancel_stops_the_command(self) -> None:
        server = self.server
        tenant = server.create_tenant()
        job_id = server.run_job(tenant)
        with tempfile.TemporaryDirectory() as folder:
            marker = os.path.join(folder, "pid")
            script = (
                "import os, sys, time\n"
                "sys.stdin.read()\n"
                "open(%r, 'w').write(str(os.getpid()))\n"
                "time.sleep(60)\n" % marker
            )
            worker = WorkerProcess(
                server, tenant, ["--lease", "5", "--wait", "1000", "--", sys.executable, "-c", script]
            )
            try:
                wait_for(
                    "the command to start",
                    lambda: os.path.exists(marker) and os.path.getsize(marker) > 0,
                )
                with open(marker) as file:
                    pid = int(file.read())
                cancelled_at = time.monotonic()
                server.ok("POST", "%s/jobs/%s/cancel" % (tenant.domain_path, job_id), expect=(200,))
                wait_for("the command to be stopped", lambda: not _alive(pid), timeout_s=10)
                stopped_after = time.monotonic() - cancelled_at
                wait_for(
                    "the worker to log the stop",
                    lambda: "not reported" in worker.stderr(),
                    timeout_s=5,
                )
            finally:
                worker.process.send_signal(signal.SIGTERM)
                code = worker.wait(20)
        stderr = worker.stderr()
        self.assertEqual(code, 0, stderr)
        # A heartbeat every 5/3 s, SIGTERM at once: the command ends within one interval or so.
        self.assertLess(stopped_after, 5 / 3 + 1.5, stderr)
        self.assertIn("was cancelled", stderr)
        job = server.get_job(tenant, job_id)
        self.assertEqual(job["status"], "cancelled")
        self.assertIsNone(job.get("error"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie that its parent has not reaped yet counts as gone.
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


if __name__ == "__main__":
    unittest.main()
