"""A daemon for the deployments a script serves (``gnomon.serve``, ``flow.serve``) instead
of a config file's: the same loop, pool, store, policies and logs, with three differences
the ``Daemon`` asks this object about.

- Its deployments are given, not read from a file, and are synced as their script's
  source (``serve:<script path>``), so neither the config file's sync nor this one
  deactivates the other's.
- A reload (SIGHUP, ``gnomon daemon reload``, ``gnomon deployments apply``) has no file
  to read: it is refused, saying what holds the store, and changes nothing.
- When it stops, its deployments are retired (inactive: nothing fires them while no
  script serves them, and their history stays), as Prefect pauses a served deployment's
  schedule at shutdown; with ``keep_active`` they stay, and the next serve catches up the
  fires missed meanwhile by their catch-up policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gnomon.deployments import LoadResult


@dataclass(frozen=True)
class ServedDeployments:
    """What a serving script hands the daemon in place of a config file."""

    source: str  # "serve:<absolute script path>"
    loaded: LoadResult  # the deployments, with their flows' parameter schemas
    keep_active: bool = False  # at stop: leave them scheduled (Prefect's pause_on_shutdown=False)

    def refuse_reload(self, path: Path | None) -> LoadResult:
        """A reload's load: a problem with the whole config, so the reload is refused."""
        from gnomon.deployments import ConfigProblem, LoadResult, describe_source

        problem = ConfigProblem(
            path,
            None,
            None,
            None,
            f"this store is served by {describe_source(self.source)}, which reads no config"
            " file: stop it, then start `gnomon daemon` to schedule the config's deployments",
        )
        return LoadResult(self.loaded.config, [problem])
