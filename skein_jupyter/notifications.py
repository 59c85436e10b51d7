"""Notification channels: the user's private notifications file, checked, and the secrets a job ships.

A recipe's ``notify:`` section says when (events) and whom (webhook *names*,
email addresses); the secrets live in the user's notifications file only:

- ``$SKEIN_JUPYTER_NOTIFICATIONS`` (a local path or an ``hdfs://`` URL), else
- ``notifications.yaml`` beside the user config file
  (``~/.config/skein-jupyter/notifications.yaml``), else
- ``hdfs:///user/<you>/.skein-jupyter/notifications.yaml``.

The file must be private (no group or world permission bits), locally and
on HDFS. A launch resolves the channels a job names into ``notify.json``
(mode 600), shipped like ``job.json`` and removed once submitted, so no
secret is in a recipe, a spec, a log, an error message or a command line.
Errors name a field of the file, never its value.
"""
from __future__ import annotations

import dataclasses
import os
import re
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exceptions import UsageError
from .runtime.job import NOTIFY_EVENTS
from .runtime.notify import NOTIFY_FILE

if TYPE_CHECKING:
    from .hdfs import HadoopFS
    from .recipe import Recipe

__all__ = ["Webhook", "Smtp", "Channels", "NOTIFY_FILE", "ENV_VAR", "HDFS_FILE", "FORMATS", "SECURITY",
           "parse_events", "check_address", "check_channel_name", "notifications_location", "parse_channels",
           "check_private", "load_channels", "secrets_for", "resolve", "write_secrets_file"]

ENV_VAR = "SKEIN_JUPYTER_NOTIFICATIONS"
HDFS_FILE = "/user/{user}/.skein-jupyter/notifications.yaml"
FORMATS = ("json", "slack")
SECURITY = {"starttls": 587, "ssl": 465, "none": 25}

_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_URL = re.compile(r"^https?://[A-Za-z0-9._~%-]+(?::[0-9]{1,5})?(?:[/?#][^\s]*)?$")


# ----------------------------------------------------------------- recipe values

def parse_events(value: object) -> tuple[str, ...]:
    """``failure,timeout`` or a list of :data:`~skein_jupyter.runtime.job.NOTIFY_EVENTS`."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{value!r} is not a list of events; use some of {', '.join(NOTIFY_EVENTS)}")
    for item in value:
        if item not in NOTIFY_EVENTS:
            raise ValueError(f"{item!r} is not an event; use some of {', '.join(NOTIFY_EVENTS)}")
    return tuple(dict.fromkeys(value))


def check_address(address: str) -> None:
    """An email address as ``local@domain``; no display names, no lists (one address per item)."""
    if not isinstance(address, str) or len(address) > 254 or not _ADDRESS.match(address):
        raise ValueError(f"{address!r} is not an email address; write one address per item, e.g. "
                         "alice@example.com")


def check_channel_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{name!r} is not a webhook name; use letters, digits, '.', '_' and '-', as named in "
                         "your notifications file")


# ----------------------------------------------------------------- the notifications file

@dataclasses.dataclass(frozen=True)
class Webhook:
    name: str
    url: str = dataclasses.field(repr=False)
    format: str = "json"


@dataclasses.dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    security: str
    sender: str
    user: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class Channels:
    """The channels of a notifications file (``source`` names it in errors)."""

    source: str
    webhooks: dict[str, Webhook]
    smtp: Smtp | None


def notifications_location(user: str, config_dir: str | os.PathLike[str] | None = None) -> str:
    """Where the notifications file is: ``$SKEIN_JUPYTER_NOTIFICATIONS``, the local file, or the HDFS one."""
    if os.environ.get(ENV_VAR):
        value = os.environ[ENV_VAR]
        return value if "://" in value else str(Path(value).expanduser())
    if config_dir is None:
        from .config import user_config_path

        config_dir = user_config_path().parent
    local = Path(config_dir) / "notifications.yaml"
    return str(local) if local.exists() else "hdfs://" + HDFS_FILE.format(user=user)


def check_private(mode: int, source: str) -> None:
    """Refuse a notifications file that its group or others may read or write."""
    if mode & 0o077:
        raise UsageError(f"notifications file {source} is readable or writable by others (mode "
                         f"{stat.S_IMODE(mode):o}); it holds secrets: make it private with chmod 600 "
                         f"(hdfs dfs -chmod 600 on HDFS)")


def _keys(data, known, where, source):
    if not isinstance(data, dict):
        raise UsageError(f"notifications file {source}: {where} is not a mapping; write `key: value` lines")
    for key in data:
        if key not in known:
            raise UsageError(f"notifications file {source}: {where}.{key} is not a setting; known: "
                             f"{', '.join(known)}")


def parse_channels(data: Any, source: str) -> Channels:
    """Check the file's content (``webhooks:`` and ``smtp:``); errors name the field, never a value."""
    if data is None:
        data = {}
    _keys(data, ("webhooks", "smtp"), "(top)", source)
    webhooks = {}
    for name, hook in (data.get("webhooks") or {}).items():
        where = f"webhooks.{name}"
        try:
            check_channel_name(name)
        except ValueError as exc:
            raise UsageError(f"notifications file {source}: {exc}") from None
        _keys(hook, ("url", "format"), where, source)
        url, fmt = hook.get("url"), hook.get("format", "json")
        if not isinstance(url, str) or not _URL.match(url):
            raise UsageError(f"notifications file {source}: {where}.url is not an http(s)://host/... URL; "
                             "give the webhook's full URL")
        if fmt not in FORMATS:
            raise UsageError(f"notifications file {source}: {where}.format is not one of {', '.join(FORMATS)}")
        webhooks[name] = Webhook(name, url, fmt)
    smtp = None
    raw = data.get("smtp")
    if raw is not None:
        _keys(raw, ("host", "port", "security", "user", "password", "from"), "smtp", source)
        security = raw.get("security", "starttls")
        if security not in SECURITY:
            raise UsageError(f"notifications file {source}: smtp.security is not one of {', '.join(SECURITY)}")
        host, port = raw.get("host"), raw.get("port", SECURITY[security])
        if not isinstance(host, str) or not re.match(r"^[A-Za-z0-9._:-]+$", host):
            raise UsageError(f"notifications file {source}: smtp.host is missing or not a host name")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise UsageError(f"notifications file {source}: smtp.port is not a port number (1-65535)")
        sender, user, password = raw.get("from"), raw.get("user"), raw.get("password")
        try:
            check_address(sender)
        except ValueError:
            raise UsageError(f"notifications file {source}: smtp.from is missing or not an email address; "
                             "give the address mail is sent from") from None
        if (user is None) != (password is None) or not all(v is None or isinstance(v, str) for v in (user, password)):
            raise UsageError(f"notifications file {source}: smtp.user and smtp.password go together (text); "
                             "give both, or neither for a server without login")
        smtp = Smtp(host, port, security, sender, user, None if password is None else str(password))
    return Channels(source, webhooks, smtp)


#: HDFS reads of a few seconds ago, so that the preflight and the spec read the file once.
_HDFS_CACHE: dict[str, tuple[float, str]] = {}
_HDFS_CACHE_SECONDS = 60.0


def _read_hdfs(url: str, fs: HadoopFS) -> str:
    cached = _HDFS_CACHE.get(url)
    if cached is not None and time.monotonic() - cached[0] < _HDFS_CACHE_SECONDS:
        return cached[1]
    mode = fs.modes(url).get(url)
    if mode is None:
        raise UsageError(f"no notifications file: {url} does not exist (nor a local "
                         "~/.config/skein-jupyter/notifications.yaml); write one with your webhooks and SMTP "
                         "server (see the batch users' guide, Notifications), mode 600")
    check_private(mode, url)
    text = fs.cat(url)
    _HDFS_CACHE[url] = (time.monotonic(), text)
    return text


def load_channels(user: str, fs: HadoopFS | None = None, location: str | None = None) -> Channels:
    """The channels of the user's notifications file (see the module's doc for where it is)."""
    import yaml

    location = location or notifications_location(user)
    if "://" in location:
        from .hdfs import HadoopFS

        text = _read_hdfs(location, fs or HadoopFS())
    else:
        try:
            with open(location, encoding="utf-8") as f:
                check_private(os.fstat(f.fileno()).st_mode, location)
                text = f.read()
        except FileNotFoundError:
            raise UsageError(f"no notifications file: {location} does not exist; write one with your webhooks "
                             f"and SMTP server, mode 600, or unset {ENV_VAR}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # the parser's message may quote a line: a secret
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"notifications file {location} is not valid YAML{where}; fix the syntax") from None
    return parse_channels(data, location)


def secrets_for(notify: Any, channels: Channels) -> dict:
    """What ``notify.json`` holds for a recipe's ``notify`` section: only the channels it names."""
    webhooks = {}
    for name in notify.webhooks:
        if name not in channels.webhooks:
            known = ", ".join(sorted(channels.webhooks)) or "none"
            raise UsageError(f"notify.webhooks: {name!r} is not a webhook of notifications file {channels.source} "
                             f"(it has: {known}); add it there or fix the name")
        hook = channels.webhooks[name]
        webhooks[name] = {"url": hook.url, "format": hook.format}
    smtp = None
    if notify.emails:
        if channels.smtp is None:
            raise UsageError(f"notify.emails: no SMTP server in notifications file {channels.source}; add an "
                             "smtp: section (host, port, security, from, user, password)")
        s = channels.smtp
        smtp = {"host": s.host, "port": s.port, "security": s.security, "from": s.sender, "user": s.user,
                "password": s.password}
    return {"webhooks": webhooks, "smtp": smtp}


def resolve(recipe: Recipe, user: str | None = None, fs: HadoopFS | None = None) -> dict | None:
    """The secrets ``recipe``'s notifications need, checked; None when it asks for no notification.

    Raises
    ------
    UsageError
        No or a non-private notifications file, an unknown webhook name, a bad
        URL, no SMTP server for emails (nothing is submitted).
    """
    notify = getattr(recipe, "notify", None)
    if notify is None or not (notify.webhooks or notify.emails) or recipe.kind == "notebook":
        return None
    from .launch import job_fs, job_user

    user = user or job_user(recipe)
    location = notifications_location(user)
    if fs is None and "://" in location:  # a proxy user's file is read as that user
        fs = job_fs(recipe)
    return secrets_for(notify, load_channels(user, fs, location))


def write_secrets_file(secrets: Mapping[str, Any], path: str | None = None) -> str:
    """Write ``secrets`` as JSON readable by the user only (a new temporary file unless ``path``)."""
    import json

    from .spec import write_private

    return write_private(json.dumps(secrets, sort_keys=True), path, "skein-jupyter-notify-")
