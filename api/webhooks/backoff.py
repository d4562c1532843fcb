"""When to try a webhook again: exponential backoff with full jitter, within a window.

Full jitter (a delay drawn uniformly below an exponential ceiling) spreads the retries of
many webhooks that failed together, so a receiver coming back is not hit all at once.
"""

import random
from datetime import datetime, timedelta

BASE_SECONDS = 5.0
CAP_SECONDS = 3600.0
# Past this the ceiling is the cap anyway; stopping here keeps 2**n a small float.
_MAX_DOUBLINGS = 32


def delay_before_attempt(
    attempt: int,
    *,
    rng: random.Random,
    base_seconds: float = BASE_SECONDS,
    cap_seconds: float = CAP_SECONDS,
) -> float:
    """Return the seconds to wait before attempt `attempt` (1 is the first, sent at once).

    Before attempt n ≥ 2 the delay is drawn uniformly from [0, min(cap, base · 2^(n-2))].
    """
    if attempt < 1:
        raise ValueError("attempts count from 1")
    if attempt == 1:
        return 0.0
    ceiling = min(cap_seconds, base_seconds * 2.0 ** min(attempt - 2, _MAX_DOUBLINGS))
    return rng.uniform(0.0, ceiling)


def retry_window_closed(*, first_attempt_at: datetime, now: datetime, retry_hours: float) -> bool:
    """Whether `retry_hours` have passed since the first attempt, so no retry should follow."""
    return now - first_attempt_at >= timedelta(hours=retry_hours)
