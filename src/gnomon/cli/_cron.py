"""``gnomon cron``: the next fire times of a cron expression, like
``systemd-analyze calendar --iterations``."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click

from gnomon.cli._common import json_option, print_json
from gnomon.control import MAX_FIRES


@click.command("cron")
@click.argument("expression")
@click.option(
    "--tz",
    "timezone",
    default="UTC",
    show_default=True,
    help="IANA time zone the expression is read in.",
)
@click.option(
    "--after",
    metavar="ISO-8601",
    help="Start after this time (default: now). Without an offset it is read in --tz.",
)
@click.option(
    "-n",
    "--iterations",
    type=click.IntRange(1, MAX_FIRES),
    default=5,
    show_default=True,
    help="How many fire times to show.",
)
@json_option
def cron_command(
    expression: str, timezone: str, after: str | None, iterations: int, as_json: bool
) -> None:
    """Show the next fire times of the cron EXPRESSION (quote it).

    Five fields (minute hour day-of-month month day-of-week), an optional sixth for
    seconds, or @hourly, @daily, @weekly, @monthly, @yearly. Across DST changes it
    follows cronie: a fixed-time job whose time is skipped fires right after the jump,
    and once (not twice) when its time is repeated.

    \b
    Examples:
      gnomon cron '30 2 * * *' --tz America/New_York -n 3
      gnomon cron '*/15 9-17 * * MON-FRI' --after 2027-03-14T08:00 --json
    """
    from gnomon.scheduling import Schedule, ScheduleError, ScheduleKind

    try:
        schedule = Schedule.single("cron", ScheduleKind.CRON, expression, timezone)
    except ScheduleError as error:
        raise click.UsageError(str(error)) from None
    start = _start(timezone, after)
    zone = ZoneInfo(timezone)  # shown in the expression's zone; computed in UTC
    fires = [fire.astimezone(zone) for fire in schedule.next_fires(start, iterations)]
    if as_json:
        print_json([fire.isoformat() for fire in fires])
    else:
        _print_fires(fires, start)
    if len(fires) < iterations:
        click.echo(f"cron {expression.strip()!r} in {timezone} does not fire again", err=True)


def _start(timezone: str, after: str | None) -> datetime:
    if after is None:
        return datetime.now(UTC)
    try:
        start = datetime.fromisoformat(after)
    except ValueError:
        raise click.BadParameter(
            f"{after!r} is not an ISO 8601 date-time", param_hint="'--after'"
        ) from None
    if start.utcoffset() is None:
        # A time a fall-back repeats means its first occurrence (fold=0).
        start = start.replace(tzinfo=ZoneInfo(timezone))
    try:
        start.astimezone(UTC)  # the triggers compute in UTC
    except OverflowError:
        raise click.BadParameter(
            f"{after!r} is outside the years 1 to 9999 in UTC", param_hint="'--after'"
        ) from None
    return start


def _print_fires(fires: list[datetime], start: datetime) -> None:
    """One line each: local time and zone, the same instant in UTC, and how far ahead."""
    from gnomon.scheduling import format_duration

    local = [fire.strftime("%a %Y-%m-%d %H:%M:%S %Z") for fire in fires]
    width = max(map(len, local), default=0)
    for text, fire in zip(local, fires, strict=True):
        utc = fire.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        ahead = format_duration(fire - start.astimezone(UTC), units=2)
        click.echo(f"{text.ljust(width)}  {utc}  in {ahead}")
