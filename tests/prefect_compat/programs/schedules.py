"""Schedule objects from prefect.schedules (concepts/schedules)."""

from datetime import timedelta

from prefect.schedules import Cron, Interval

daily = Cron("0 9 * * *", timezone="Europe/Paris")
every = Interval(timedelta(minutes=15))
print(type(daily).__name__, daily.cron, daily.timezone)
print(type(every).__name__, every.interval)
