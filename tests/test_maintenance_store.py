"""Maintenance windows in the store, on SQLite and PostgreSQL: an operator's added and
removed with their audit entries, the config's synced as a whole (its rows kept while the
file does not change them, never removable by `rm`), reads by end; and migration 0018
upgrading from 0017 and downgrading to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from gnomon._settings import get_settings
from gnomon.store import (
    Actor,
    AuditAction,
    MaintenanceSource,
    Origin,
    Store,
    current_revision,
    reset_store,
    upgrade,
)
from gnomon.store._db import create_engine
from gnomon.store._migrate import alembic_config

pytestmark = pytest.mark.backends

ALICE = Actor("alice", Origin.CLI)
T = datetime(2026, 12, 8, 1, tzinfo=UTC)


def window(hours: int, **more: object) -> dict[str, object]:
    return {
        "starts_at": T + timedelta(hours=hours),
        "ends_at": T + timedelta(hours=hours + 2),
        "reason": f"work {hours}",
        "deployments": [],
        "tags": [],
        "source": MaintenanceSource.OPERATOR,
        **more,
    }


def test_an_operator_s_window_is_added_and_removed_each_audited(store: Store) -> None:
    added = store.add_maintenance(window(0, tags=["crm"]), ALICE)  # type: ignore[arg-type]
    assert (added.starts_at, added.ends_at, added.tags, added.created_by) == (
        T,
        T + timedelta(hours=2),
        ["crm"],
        "alice",
    )
    assert added.source is MaintenanceSource.OPERATOR
    removed = store.remove_maintenance(added.id, ALICE, "done early")
    assert removed == added
    assert store.remove_maintenance(added.id, ALICE) is None  # gone
    entries = store.read_audit(target=str(added.id))
    assert [(e.action, e.actor, e.reason) for e in entries] == [
        (AuditAction.MAINTENANCE_RM, "alice", "done early"),
        (AuditAction.MAINTENANCE_ADD, "alice", "work 0"),
    ]
    assert entries[1].detail == {
        "starts_at": "2026-12-08T01:00:00+00:00",
        "ends_at": "2026-12-08T03:00:00+00:00",
        "deployments": [],
        "tags": ["crm"],
    }


def test_windows_are_read_by_start_and_by_whether_they_are_over(store: Store) -> None:
    late = store.add_maintenance(window(10), ALICE)  # type: ignore[arg-type]
    early = store.add_maintenance(window(0), ALICE)  # type: ignore[arg-type]
    assert [row.id for row in store.read_maintenance()] == [early.id, late.id]
    # [start, end): a window ending at the time asked is over then.
    assert [row.id for row in store.read_maintenance(T + timedelta(hours=2))] == [late.id]
    assert [row.id for row in store.read_maintenance(T + timedelta(hours=1))] == [
        early.id,
        late.id,
    ]


def test_the_config_s_windows_are_synced_as_a_whole_and_kept_while_unchanged(
    store: Store,
) -> None:
    ours = store.add_maintenance(window(0), ALICE)  # type: ignore[arg-type]
    config = MaintenanceSource.CONFIG
    first = [window(5, source=config, name="a"), window(8, source=config, name="b")]
    assert store.sync_config_maintenance(first) is True  # type: ignore[arg-type]
    ids = {row.name: row.id for row in store.read_maintenance() if row.source is config}
    assert store.sync_config_maintenance(first) is False  # type: ignore[arg-type]
    assert {row.name: row.id for row in store.read_maintenance() if row.source is config} == ids
    # rm leaves a config window as it is, and says whose it is.
    kept = store.remove_maintenance(ids["a"], ALICE)
    assert kept is not None
    assert kept.source is config
    assert store.sync_config_maintenance([window(5, source=config, name="a")]) is True  # type: ignore[list-item]
    assert [(row.name, row.source) for row in store.read_maintenance()] == [
        (None, MaintenanceSource.OPERATOR),
        ("a", config),
    ]
    assert store.sync_config_maintenance([]) is True
    assert [row.id for row in store.read_maintenance()] == [ours.id]


@pytest.mark.empty_database
def test_migration_0018_adds_the_table_and_its_downgrade_drops_it(gnomon_home: Path) -> None:
    from alembic import command

    url = get_settings().effective_database_url
    command.upgrade(alembic_config(url), "0017")
    upgrade(url)
    assert current_revision(url) >= "0018"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert "maintenance_windows" in inspect(connection).get_table_names()
        command.downgrade(alembic_config(url), "0017")
        reset_store()
        with engine.connect() as connection:
            assert "maintenance_windows" not in inspect(connection).get_table_names()
    finally:
        engine.dispose()
    assert current_revision(url) == "0017"
