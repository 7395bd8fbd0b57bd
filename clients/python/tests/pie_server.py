"""A real PIE for the tests: `node --import tsx src/cli/main.ts serve` from the repository root,
as test/helpers/pie-process.ts starts one. The embedded database in a temporary folder by
default; with DATABASE_URL set, a fresh database on that server, dropped afterwards. One PIE
serves the whole run (started on first use, stopped at exit); each test makes its own tenant
and model, so tests never see each other's jobs."""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

HERE = Path(__file__).resolve().parent
PYTHON_ROOT = HERE.parent  # clients/python
REPO_ROOT = PYTHON_ROOT.parent.parent
sys.path.insert(0, str(PYTHON_ROOT))

from pie_worker import mint_token  # noqa: E402
from pie_worker._http import Request  # noqa: E402

NODE = os.environ.get("NODE") or "node"
STARTUP_TIMEOUT_S = 90.0

ROUTE_CONTRACT = [
    {"name": "route", "type": "string", "required": True},
    {"name": "capacity", "type": "integer", "default": 60},
]


class Tenant(NamedTuple):
    client_id: str
    domain_id: str
    model_id: str
    version: str
    domain_path: str

    @property
    def version_path(self) -> str:
        return "/v2/models/%s/versions/%s" % (self.model_id, self.version)

    @property
    def jobs_route(self) -> str:
        return self.domain_path + "/service/service-1/assignments/default/jobs"


class Pie:
    def __init__(self) -> None:
        self.secret = "test-" + secrets.token_hex(24)
        self.data_dir = tempfile.mkdtemp(prefix="pie-py-sdk-")
        self.database_url: Optional[str] = None
        self._database_name: Optional[str] = None
        self._server_url = os.environ.get("DATABASE_URL", "").strip() or None
        self.backend = "postgres" if self._server_url else "pglite"
        self.process: Optional["subprocess.Popen[str]"] = None
        self.url = ""
        self.admin_token = ""
        self._output: List[str] = []
        self._reader: Optional[threading.Thread] = None
        self._counter = 0

    # Life cycle.
    def start(self) -> None:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "PIE_HOST": "127.0.0.1",
            "PIE_PORT": "0",
            "PIE_LOG_LEVEL": "warn",
            "PIE_DATA_DIR": self.data_dir,
            "PIE_JWT_SECRET": self.secret,
            "PIE_SHUTDOWN_GRACE_S": "1",
        }
        if self._server_url is not None:
            self._database_name = "pie_py_%d_%s" % (os.getpid(), secrets.token_hex(4))
            _admin_sql(self._server_url, "create database %s" % self._database_name)
            parts = urllib.parse.urlsplit(self._server_url)
            self.database_url = urllib.parse.urlunsplit(
                parts._replace(path="/" + self._database_name)
            )
            env["DATABASE_URL"] = self.database_url
        self.process = subprocess.Popen(
            [NODE, "--import", "tsx", "src/cli/main.ts", "serve"],
            cwd=str(REPO_ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        self._reader = threading.Thread(target=self._read_output, args=(ready,), daemon=True)
        self._reader.start()
        if not ready.wait(STARTUP_TIMEOUT_S) or not self.url:
            self.stop()
            raise RuntimeError("pie serve did not start:\n" + self.output())

    def _read_output(self, ready: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._output.append(line)
            if line.startswith("PIE is serving at "):
                self.url = line.split()[-1]
            elif line.startswith("admin token"):
                self.admin_token = line.split()[-1]
            elif line.startswith("API reference"):
                ready.set()
        ready.set()  # it exited

    def output(self) -> str:
        return "".join(self._output)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stdout is not None:
            if self._reader is not None:
                self._reader.join(5)
            process.stdout.close()
        if self._server_url is not None and self._database_name is not None:
            name, self._database_name = self._database_name, None
            try:
                _admin_sql(self._server_url, "drop database if exists %s with (force)" % name)
            except RuntimeError as error:
                sys.stderr.write("could not drop the test database: %s\n" % error)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # The API.
    def api(
        self, method: str, path: str, body: Any = None, token: Optional[str] = None
    ) -> Tuple[int, Any]:
        answer = Request(
            method, self.url + path, token=token or self.admin_token, body=body, timeout_s=60
        ).send()
        return answer.status, answer.body

    def ok(
        self, method: str, path: str, body: Any = None, expect: Tuple[int, ...] = (200, 201, 202)
    ) -> Any:
        status, answer = self.api(method, path, body)
        if status not in expect:
            raise AssertionError("%s %s: %d %s" % (method, path, status, json.dumps(answer)))
        return answer

    def token(self, scopes: List[str], models: Optional[List[str]] = None) -> str:
        """A token signed as `pie token` signs one, with the server's secret."""
        return mint_token(
            self.secret.encode("utf-8"), subject="python-tests", scopes=scopes, models=models
        )

    def unique(self, prefix: str) -> str:
        self._counter += 1
        return "%s-%d-%d" % (prefix, os.getpid(), self._counter)

    def create_tenant(self, version_settings: Optional[Dict[str, Any]] = None) -> Tenant:
        """A client, a domain, a model version (a pull worker's unless `version_settings` says
        otherwise) assigned as the domain default, and one service, all through the API."""
        client_id = self.unique("client")
        model_id = self.unique("model")
        tenant = Tenant(
            client_id,
            "south_australia",
            model_id,
            "1.0.0",
            "/v2/clients/%s/domains/south_australia" % client_id,
        )
        self.ok("PUT", "/v2/clients/" + client_id, {"name": "Python SDK tests"})
        self.ok("PUT", tenant.domain_path, {})
        self.ok("PUT", "/v2/models/" + model_id, {"description": "pie_worker tests"})
        version: Dict[str, Any] = {
            "features": ROUTE_CONTRACT,
            "job_types": ["inference", "training"],
            "handler": {"type": "worker"},
        }
        version.update(version_settings or {})
        self.ok("PUT", tenant.version_path, version)
        self.ok(
            "PUT",
            tenant.domain_path + "/services/service-1",
            {"provided_features": {"route": "r1"}},
        )
        self.ok(
            "PUT",
            tenant.domain_path + "/assignments/default",
            {"model_id": model_id, "model_version": "1.0.0"},
        )
        return tenant

    def run_job(self, tenant: Tenant, job_input: Optional[Dict[str, Any]] = None) -> str:
        answer = self.ok("POST", tenant.jobs_route, {"job_type": "inference", "input": job_input or {}})
        return str(answer["job_id"])

    def get_job(self, tenant: Tenant, job_id: str) -> Dict[str, Any]:
        job = self.ok("GET", "%s/jobs/%s" % (tenant.domain_path, job_id), expect=(200,))
        assert isinstance(job, dict)
        return job

    def list_jobs(self, tenant: Tenant, query: str) -> List[Dict[str, Any]]:
        items: List[Dict[str, Any]] = []
        cursor: Optional[str] = None
        while True:
            page = "%s/jobs?limit=500&%s" % (tenant.domain_path, query)
            if cursor is not None:
                page += "&cursor=" + urllib.parse.quote(cursor, safe="")
            answer = self.ok("GET", page, expect=(200,))
            items.extend(answer["items"])
            cursor = answer.get("next_cursor")
            if cursor is None:
                return items

    def worker_token(self, tenant: Tenant) -> str:
        return self.token(["jobs:complete"], models=[tenant.model_id])


def wait_for(description: str, check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + description)
        time.sleep(0.05)


def _admin_sql(server_url: str, sql: str) -> None:
    """One statement on the PostgreSQL server, through the repository's own `pg` package (the
    standard library has no PostgreSQL driver)."""
    script = (
        "const pg = require('pg');"
        "const client = new pg.Client({ connectionString: process.argv[1] });"
        "client.connect().then(() => client.query(process.argv[2])).then(() => client.end(),"
        " (error) => { console.error(error.message); process.exit(1); });"
    )
    done = subprocess.run(
        [NODE, "-e", script, server_url, sql],
        cwd=str(REPO_ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError("%s: %s" % (sql, done.stderr.strip()))


_pie: Optional[Pie] = None
_failure: Optional[BaseException] = None
_starter: Optional[threading.Thread] = None
_lock = threading.Lock()


def start_soon() -> None:
    """Starts the run's PIE on a thread, so the tests that need none run meanwhile."""
    global _starter
    with _lock:
        if _starter is None:
            _starter = threading.Thread(target=_start, name="pie-start", daemon=True)
            _starter.start()


def _start() -> None:
    global _pie, _failure
    server = Pie()
    atexit.register(server.stop)
    try:
        server.start()
    except BaseException as error:
        _failure = error
        return
    _pie = server


def pie() -> Pie:
    """The run's PIE, started on first use (or by start_soon) and stopped when the test process
    exits."""
    start_soon()
    assert _starter is not None
    _starter.join()
    if _pie is None:
        raise RuntimeError("PIE did not start: %s" % _failure)
    return _pie
