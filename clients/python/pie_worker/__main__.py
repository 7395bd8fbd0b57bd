"""`python -m pie_worker --model M --version V [options] -- command [args...]`."""

from .cli import main

raise SystemExit(main())
