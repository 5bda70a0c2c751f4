"""Fixed per-deployment jitter, like systemd's ``RandomizedDelaySec`` with
``FixedRandomDelay=yes``: spread out jobs that share a schedule, the same way every time.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from gnomon.scheduling._base import ScheduleError

_MICROSECOND = timedelta(microseconds=1)


def jitter_offset(key: str, jitter: timedelta) -> timedelta:
    """A delay in [0, ``jitter``) that depends only on ``key`` (a deployment's name).

    It comes from SHA-256, not ``hash()``: Python salts ``hash()`` per process, and the
    delay must be the same in every process, on every machine, after every restart.
    """
    if jitter < timedelta(0):
        raise ScheduleError(f"jitter {jitter} must not be negative")
    span = jitter // _MICROSECOND
    if span == 0:
        return timedelta(0)
    # All 256 bits, so the modulo's bias is negligible even for the longest timedelta.
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest(), "big")
    return (digest % span) * _MICROSECOND
