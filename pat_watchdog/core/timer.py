"""When the timer runs next: the next time WATCHDOG_SCHEDULE's NCRONTAB expression fires (pure).

The Functions timer trigger reads six fields (second minute hour day month day-of-week) in UTC on
Linux plans (Microsoft Learn, "Timer trigger for Azure Functions", NCRONTAB expressions and time
zones). A day must match both the day-of-month and the day-of-week field, as in NCrontab
("* 12 16 * Mon": noon hours of a Monday the 16th; NCrontab's Crontab Examples).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pat_watchdog.core.setting_values import CRON_FIELDS, cron_value

_HORIZON_DAYS = 366 * 5 + 1   # "0 0 0 29 2 *" fires once in four years (eight across 2100)


def _allowed(field: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for item in field.split(","):
        base, _, step = item.partition("/")
        start, _, end = base.partition("-")
        if base == "*":
            first, last = low, high
        else:
            first = cron_value(start, low, high)
            last = cron_value(end, low, high) if end else (high if step else first)
        values.update(range(first, last + 1, int(step) if step else 1))
    return frozenset(values)


def next_run(expression: str, not_before: datetime) -> datetime | None:
    """The first time at or after `not_before` (whole seconds, its time zone) when the schedule fires;
    None when it never does within five years (a 31st of February)."""
    seconds, minutes, hours, days, months, weekdays = (
        _allowed(field, low, high) for field, (_, low, high) in zip(expression.split(), CRON_FIELDS, strict=True))
    start = not_before.replace(microsecond=0) + (timedelta(seconds=1) if not_before.microsecond else timedelta())
    midnight = start.replace(hour=0, minute=0, second=0)
    for offset in range(_HORIZON_DAYS):
        day = midnight + timedelta(days=offset)
        if day.day not in days or day.month not in months or (day.weekday() + 1) % 7 not in weekdays:
            continue
        for hour in sorted(hours):
            for minute in sorted(minutes):
                for second in sorted(seconds):
                    moment = day.replace(hour=hour, minute=minute, second=second)
                    if moment >= start:
                        return moment
    return None
