"""The ``gnomon`` command line. Commands import their heavy modules lazily, so that every
command answers at once."""

from __future__ import annotations

import click

from gnomon._version import __version__
from gnomon.cli._artifacts import artifacts_group
from gnomon.cli._backfill import backfill_group
from gnomon.cli._breaches import breaches_group
from gnomon.cli._common import Commands
from gnomon.cli._completion import completion_command
from gnomon.cli._control import audit_command, pause_command, resume_command, token_group
from gnomon.cli._cron import cron_command
from gnomon.cli._daemon import daemon_group, dashboard_command
from gnomon.cli._db import db_group
from gnomon.cli._deployments import deployments_group
from gnomon.cli._limits import global_limits_group, limits_group
from gnomon.cli._logs import logs_command
from gnomon.cli._maintenance import maintenance_group
from gnomon.cli._pools import pools_group
from gnomon.cli._runs import run_command, runs_group
from gnomon.cli._variables import secret_group, variable_group


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gnomon")
def main() -> None:
    """gnomon: scheduled Python workflows on your own machines.

    \b
    Examples:
      gnomon daemon --config config.example.toml   # run the scheduler
      gnomon dashboard                              # where its web dashboard is
      gnomon deployments list                       # what is scheduled, and when
      gnomon pause nightly-report --reason INC-42   # stop a schedule during an incident
      gnomon logs -f --deployment nightly-report    # follow its logs
      gnomon runs list --state Failed --since 1d    # what went wrong
    """


for command in (
    daemon_group,
    dashboard_command,
    deployments_group,
    breaches_group,
    runs_group,
    run_command,
    backfill_group,
    pause_command,
    resume_command,
    maintenance_group,
    logs_command,
    artifacts_group,
    limits_group,
    global_limits_group,
    pools_group,
    audit_command,
    token_group,
    variable_group,
    secret_group,
    cron_command,
    db_group,
    completion_command,
):
    main.add_command(command)
