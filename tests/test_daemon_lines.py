"""The daemon's log lines stay short enough for journald (which cuts lines past 48 KiB)."""

from __future__ import annotations

import json

from gnomon.daemon._service import LOGGED_NAMES, _some


def test_a_sync_of_thousands_of_deployments_lists_a_bounded_number_of_names() -> None:
    names = [f"far-{i:05d}" for i in range(10_000)]

    listed = _some(names)

    assert listed[:LOGGED_NAMES] == names[:LOGGED_NAMES]
    assert listed[-1] == f"... and {10_000 - LOGGED_NAMES} more"
    assert len(json.dumps(listed)) < 4096
    assert _some(names[:3]) == names[:3]
