"""Reading setting values: one reader that collects every problem, and the converters it uses (pure)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Callable, Mapping
from urllib.parse import urlsplit

from pat_watchdog.core.times import parse_utc


class Reader:
    """Reads raw values and collects every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return value.strip() if value is not None and value.strip() else None

    def parse(self, name: str, default, convert: Callable[[str], object], expected: str):
        value = self.raw(name)
        if value is None:
            return default
        try:
            return convert(value)
        except (ValueError, TypeError):
            self.problems.append(f"{name}={quote(name, value)}: expected {expected}")
            return default

    def require(self, name: str, expected: str) -> str:
        value = self.raw(name)
        if value is None:
            self.problems.append(f"{name} is required: expected {expected}")
            return ""
        return value


def quote(name: str, value: str) -> str:
    # A password or a webhook URL with its signature must not be echoed back in an error.
    if "PASSWORD" in name or "WEBHOOK" in name:
        return "<hidden>"
    return repr(value if len(value) <= 120 else value[:117] + "...")


def int_in(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        number = int(text)
        if not low <= number <= high:
            raise ValueError(text)
        return number
    return convert


def positive_float(text: str) -> float:
    number = float(text)
    if not 0 < number < 24 * 366:
        raise ValueError(text)
    return number


def day_list(text: str) -> tuple[int, ...]:
    parts = [p for p in re.split(r"[,\s]+", text) if p]
    days = sorted({int_in(0, 366)(p) for p in parts}, reverse=True)
    if not days:
        raise ValueError(text)
    return tuple(days)


def https_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(text)
    return text.rstrip("/")


def boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(text)


def parse_expiry(text: str) -> datetime:
    """An ISO date (`2027-01-15`) or date-time; naive values are UTC."""
    return parse_utc(text)


def schedule(text: str) -> str:
    if len(text.split()) != 6:
        raise ValueError(text)
    return text


def emails(text: str) -> tuple[str, ...]:
    addresses = tuple(a.strip() for a in re.split(r"[,;]", text) if a.strip())
    if not addresses or any(not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", a) for a in addresses):
        raise ValueError(text)
    return addresses


def matching(pattern: re.Pattern) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if not pattern.fullmatch(text):
            raise ValueError(text)
        return text
    return convert
