#!/usr/bin/env python3
"""A demo model handler for PIE in Python: a tiny "model" that scores a service's features.

Run it as a pull worker with the SDK (PIE_TOKEN: a jobs:complete token for the model):

    PYTHONPATH=clients/python python3 clients/python/examples/demo_handler.py \\
        --url http://127.0.0.1:8080 --model python-demo --version 1.0.0

or as the command that `python -m pie_worker` (or `pie worker`) runs once per job, the
envelope on stdin and the output on stdout:

    PYTHONPATH=clients/python python3 -m pie_worker --model python-demo --version 1.0.0 \\
        -- python3 clients/python/examples/demo_handler.py --stdin

Input it understands: `horizon_min` (minutes ahead to predict, default 30), `work_s` (seconds
to pretend to work, which a cancel cuts short), `fail: true` (fail on purpose).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional, cast

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pie_worker import Job, JobFailed, Worker  # noqa: E402

BASE_DELAY_MIN = {"bus": 4.0, "tram": 2.5, "train": 1.5}


def score(features: Dict[str, Any], job_input: Dict[str, Any]) -> Dict[str, Any]:
    """The model: a delay and a load factor from the route, its capacity and mode, and the
    horizon asked for. Deterministic: the same features and input give the same answer."""
    route = str(features.get("route", ""))
    capacity = features.get("capacity")
    capacity = capacity if isinstance(capacity, int) and capacity > 0 else 60
    mode = str(features.get("mode") or "bus")
    horizon = job_input.get("horizon_min", 30)
    horizon = horizon if isinstance(horizon, (int, float)) and horizon >= 0 else 30
    # How busy the route is, between 0 and 1, from a hash of its name.
    busy = int(hashlib.sha256(route.encode("utf-8")).hexdigest()[:8], 16) % 1000 / 1000.0
    delay = BASE_DELAY_MIN.get(mode, 3.0) * (1 + busy) * (1 + horizon / 60.0)
    load = min(1.0, (0.2 + 0.8 * busy) * 60.0 / capacity)
    return {
        "delay_minutes": round(delay, 1),
        "load_factor": round(load, 2),
        "horizon_min": horizon,
    }


def predict(envelope: Dict[str, Any], wait: Any = time.sleep) -> Optional[Dict[str, Any]]:
    """The output for one job's envelope; None when `wait` says the job was cancelled."""
    job_input: Dict[str, Any] = envelope.get("input") or {}
    if job_input.get("fail") is True:
        raise JobFailed("demo_failure", "failed on purpose (input.fail)")
    work_s: Any = job_input.get("work_s", 0)
    if isinstance(work_s, (int, float)) and work_s > 0 and wait(work_s):
        return None
    model = "%s@%s" % (envelope.get("model_id"), envelope.get("model_version"))
    if envelope.get("job_type") == "training":
        samples: Any = job_input.get("samples")
        count = len(cast(List[Any], samples)) if isinstance(samples, list) else 0
        return {"trained": True, "model": model, "samples": count}
    return {
        "prediction": score(envelope.get("features") or {}, job_input),
        "model": model,
        "job_type": envelope.get("job_type"),
    }


def handle(job: Job) -> Optional[Dict[str, Any]]:
    """The SDK handler: `job.wait` sleeps but wakes (True) as soon as the job is cancelled."""
    return predict(job.envelope, wait=job.wait)


def stdin_mode() -> int:
    """A command per job: the envelope on stdin, the output on stdout, exit 3 on failure."""
    envelope = json.load(sys.stdin)
    try:
        output = predict(envelope)
    except JobFailed as failure:
        sys.stderr.write("demo_handler: job %s %s\n" % (envelope.get("job_id"), failure.message))
        return 3
    json.dump(output, sys.stdout)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stdin", action="store_true", help="score one envelope from stdin")
    parser.add_argument("--url", default=os.environ.get("PIE_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--model")
    parser.add_argument("--version")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lease", type=int, default=60, help="lease in seconds")
    parser.add_argument("--once", action="store_true", help="claim once, run what came, exit")
    options = parser.parse_args()
    if options.stdin:
        return stdin_mode()
    token = os.environ.get("PIE_TOKEN", "").strip()
    if not options.model or not options.version or not token:
        parser.error("--model, --version and a PIE_TOKEN (scope jobs:complete) are needed")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    worker = Worker(
        options.url,
        token,
        options.model,
        options.version,
        concurrency=options.concurrency,
        lease_s=options.lease,
    )
    worker.run(handle, once=options.once)
    return 0


if __name__ == "__main__":
    sys.exit(main())
