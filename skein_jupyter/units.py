"""Memory sizes and durations as people write them in recipes and flags."""
import re

__all__ = ["parse_memory_mb", "parse_duration_s", "format_duration"]

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_MEMORY_FACTORS_MB = {"b": 1 / 2**20, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 ** 2}
_DURATION_PART = r"(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)?"
_DURATION = re.compile(rf"^\s*(?:{_DURATION_PART}\s*)+$", re.IGNORECASE)
_DURATION_FACTORS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_memory_mb(value: int | float | str) -> int:
    """Mebibytes in ``value``: an int (MiB) or a string such as ``"2 GiB"``, ``"512M"``, ``"1.5g"``.

    Units are binary whatever their spelling (YARN's are). Raises ValueError.

    >>> parse_memory_mb("2 GiB"), parse_memory_mb(512), parse_memory_mb("1.5g")
    (2048, 512, 1536)
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a memory size")
    if isinstance(value, (int, float)):
        mb = value
    else:
        match = _MEMORY.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a memory size")
        unit = (match.group(2) or "m")[0].lower()
        mb = float(match.group(1)) * _MEMORY_FACTORS_MB[unit]
    mb = int(-(-mb // 1))  # round up: asking for less than written would surprise
    if mb <= 0:
        raise ValueError(f"{value!r} is not a positive memory size")
    return mb


def parse_duration_s(value: int | float | str) -> int:
    """Seconds in ``value``: a number (seconds) or a string such as ``"90s"``, ``"15m"``, ``"1h30m"``.

    >>> parse_duration_s("15m"), parse_duration_s(30), parse_duration_s("1.5h"), parse_duration_s("1h30m")
    (900, 30, 5400, 5400)
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = value
    else:
        if not _DURATION.match(str(value)):
            raise ValueError(f"{value!r} is not a duration")
        parts = re.findall(_DURATION_PART, str(value), re.IGNORECASE)
        if len(parts) > 1 and not all(unit for _, unit in parts):
            raise ValueError(f"{value!r} is not a duration")  # "1h 30": 30 what?
        seconds = sum(float(number) * _DURATION_FACTORS[(unit or "s")[0].lower()] for number, unit in parts)
    seconds = int(-(-seconds // 1))
    if seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return seconds


def format_duration(seconds: int | float) -> str:
    """``90`` -> ``"1m30s"``; the inverse of :func:`parse_duration_s` for display (the runtime's own)."""
    from .runtime.activity import format_duration as runtime_format

    return runtime_format(seconds)
