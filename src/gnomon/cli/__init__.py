"""The ``gnomon`` command line. Commands import their heavy modules lazily, so that every
command answers at once."""

from __future__ import annotations

import click

from gnomon import __version__
from gnomon.cli._cron import cron_command
from gnomon.cli._daemon import daemon_group
from gnomon.cli._db import db_group
from gnomon.cli._inspect import deployments_group, runs_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gnomon")
def main() -> None:
    """gnomon: scheduled Python workflows on your own machines.

    \b
    Examples:
      gnomon daemon --config config.example.toml   # run the scheduler
      gnomon deployments list                       # what is scheduled, and when
      gnomon runs list --state Failed               # what went wrong
    """


main.add_command(db_group)
main.add_command(daemon_group)
main.add_command(deployments_group)
main.add_command(runs_group)
main.add_command(cron_command)
