"""Start the service, PostgreSQL, Redis and PgBouncer as real processes, for tests and bench.

Not part of the installed product: the test suite and `python -m bench` import it from the
repository's root, where both run.
"""

from pathlib import Path

# Where the processes start: `python -m uvicorn main:app` finds `main` here.
ROOT = Path(__file__).resolve().parent.parent
