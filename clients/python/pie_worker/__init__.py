"""pie_worker: a pull worker for PIE model handlers, standard library only (Python 3.9+).

    from pie_worker import Worker

    def handle(job):
        return {"score": len(job.features or {})}

    Worker("http://127.0.0.1:8080", token, "my-model", "1.0.0", concurrency=4).run(handle)

`python -m pie_worker --model M --version V -- command args` runs a command per job, as
`pie worker` does.
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ClaimRefused,
    HttpError,
    JobCancelled,
    JobFailed,
    NetworkError,
    PieError,
    RequestAborted,
)
from .job import Job  # noqa: E402
from .tokens import mint_token  # noqa: E402
from .worker import Handler, TokenSource, Worker  # noqa: E402

__all__ = [
    "ClaimRefused",
    "Handler",
    "HttpError",
    "Job",
    "JobCancelled",
    "JobFailed",
    "NetworkError",
    "PieError",
    "RequestAborted",
    "TokenSource",
    "Worker",
    "__version__",
    "mint_token",
]
