"""Hadoop delegation tokens in a container: read the Credentials file, give WebHDFS its token.

A container on a Kerberos-secured cluster has no ticket, only the
application's delegation tokens in the file named by
``HADOOP_TOKEN_FILE_LOCATION`` (Hadoop's ``Credentials`` token storage:
``b"HDTS"``, a version byte, then the writable form (0) or a length-delimited
``CredentialsProto`` (1)). WebHDFS takes a token as ``delegation=<token>`` in
the URL string form of ``Token.encodeToUrlString``. Standard library only:
this runs in the user's environment. Error messages never show token bytes.
"""
from __future__ import annotations

import base64
import dataclasses
import os

__all__ = ["Token", "read_credentials", "hdfs_delegation_token", "HDFS_DELEGATION_KIND", "TOKEN_FILE_VARIABLE"]

HDFS_DELEGATION_KIND = "HDFS_DELEGATION_TOKEN"
TOKEN_FILE_VARIABLE = "HADOOP_TOKEN_FILE_LOCATION"
_MAGIC = b"HDTS"
_WRITABLE, _PROTOBUF = 0, 1
# Text fields keep their exact bytes (Hadoop's Text does not check UTF-8), so a token re-encodes as it was read.
_TEXT_ERRORS = "surrogateescape"


@dataclasses.dataclass(frozen=True)
class Token:
    """One token of a Credentials file; ``identifier`` and ``password`` stay out of its repr."""

    alias: str
    identifier: bytes = dataclasses.field(repr=False)
    password: bytes = dataclasses.field(repr=False)
    kind: str
    service: str

    def writable(self) -> bytes:
        """The token's Writable form (Hadoop's ``Token.write``)."""
        kind = self.kind.encode("utf-8", _TEXT_ERRORS)
        service = self.service.encode("utf-8", _TEXT_ERRORS)
        return b"".join(_vint(len(part)) + part for part in (self.identifier, self.password, kind, service))

    def encode_url_string(self) -> str:
        """What Hadoop's ``Token.encodeToUrlString`` gives: URL-safe Base64 of the Writable form, no padding."""
        return base64.urlsafe_b64encode(self.writable()).rstrip(b"=").decode("ascii")


class _Corrupt(Exception):
    """What is wrong and where; the caller adds the file name."""


def _vint(length: int) -> bytes:
    """Hadoop's ``WritableUtils.writeVInt`` of a length: one byte up to 127, else -112 - n (0x90 - n) and n bytes."""
    if length <= 127:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x90 - len(body)]) + body


class _Reader:
    """A cursor over ``data[pos:end]`` that raises :class:`_Corrupt` instead of reading past the end."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos = data, pos
        self.end = len(data) if end is None else end

    def take(self, size: int, what: str) -> bytes:
        if size < 0:
            raise _Corrupt(f"negative length {size} for {what} at byte {self.pos}")
        if size > self.end - self.pos:
            raise _Corrupt(f"truncated: {what} of {size} bytes at byte {self.pos} runs past the end")
        self.pos += size
        return self.data[self.pos - size:self.pos]

    def vint(self, what: str) -> int:
        """Hadoop's ``WritableUtils.readVInt`` (zero-compressed, int range)."""
        start = self.pos
        first = self.take(1, what)[0]
        first = first - 256 if first > 127 else first  # Java's signed byte
        if first >= -112:
            return first
        negative = first < -120
        size = (-120 if negative else -112) - first
        value = int.from_bytes(self.take(size, what), "big")
        value = ~value if negative else value
        if not -2**31 <= value < 2**31:
            raise _Corrupt(f"{what} at byte {start} does not fit in an int")
        return value

    def vint_bytes(self, what: str) -> bytes:
        return self.take(self.vint(f"length of {what}"), what)

    def text(self, what: str) -> str:
        return self.vint_bytes(what).decode("utf-8", _TEXT_ERRORS)

    def varint(self, what: str) -> int:
        """A protobuf base-128 varint (at most 10 bytes)."""
        value = 0
        for shift in range(0, 70, 7):
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise _Corrupt(f"{what} at byte {self.pos} is not a varint")

    def fields(self, what: str) -> dict[int, list[_Reader]]:
        """The length-delimited fields of a protobuf message up to ``end``, by number; other fields are skipped."""
        found: dict[int, list[_Reader]] = {}
        while self.pos < self.end:
            key = self.varint(f"field key in {what}")
            number, wire = key >> 3, key & 7
            if wire == 2:
                size = self.varint(f"field length in {what}")
                self.take(size, f"field {number} of {what}")
                found.setdefault(number, []).append(_Reader(self.data, self.pos - size, self.pos))
            elif wire == 0:
                self.varint(f"field {number} of {what}")
            elif wire in (1, 5):
                self.take(8 if wire == 1 else 4, f"field {number} of {what}")
            else:
                raise _Corrupt(f"field {number} of {what} has unsupported wire type {wire} (at byte {self.pos})")
        return found

    def rest(self) -> bytes:
        return self.data[self.pos:self.end]


def _last(fields: dict[int, list[_Reader]], number: int) -> _Reader:
    """A singular field: the last occurrence wins, as in protobuf; an absent one is empty."""
    return fields.get(number, [_Reader(b"")])[-1]


def _read_writable(reader: _Reader) -> list[Token]:
    tokens: dict[str, Token] = {}
    count = reader.vint("token count")
    if count < 0:
        raise _Corrupt(f"negative token count {count}")
    for _ in range(count):
        alias = reader.text("token alias")
        identifier = reader.vint_bytes("token identifier")
        password = reader.vint_bytes("token password")
        tokens[alias] = Token(alias, identifier, password, reader.text("token kind"), reader.text("token service"))
    count = reader.vint("secret key count")
    if count < 0:
        raise _Corrupt(f"negative secret key count {count}")
    for _ in range(count):
        reader.text("secret key alias")
        reader.vint_bytes("secret key")
    return list(tokens.values())


def _read_protobuf(reader: _Reader) -> list[Token]:
    size = reader.varint("message length")
    reader.take(size, "credentials message")
    storage = _Reader(reader.data, reader.pos - size, reader.pos).fields("CredentialsProto")
    tokens: dict[str, Token] = {}
    for entry in storage.get(1, []):
        kv = entry.fields("CredentialsKVProto")
        alias = _last(kv, 1).rest().decode("utf-8", _TEXT_ERRORS)
        token = _last(kv, 2).fields("TokenProto")
        identifier, password, kind, service = (_last(token, n).rest() for n in (1, 2, 3, 4))
        tokens[alias] = Token(alias, identifier, password, kind.decode("utf-8", _TEXT_ERRORS),
                              service.decode("utf-8", _TEXT_ERRORS))
    return list(tokens.values())


def read_credentials(path: str | os.PathLike[str]) -> list[Token]:
    """The tokens of a Hadoop Credentials file, in file order (a repeated alias keeps its last token).

    Raises ``FileNotFoundError`` if there is no file and ``ValueError`` naming
    the file if it is not a Credentials file of version 0 or 1.
    """
    with open(path, "rb") as f:
        data = f.read()
    reader = _Reader(data)
    try:
        if reader.take(len(_MAGIC), "header") != _MAGIC:
            raise _Corrupt("it does not start with HDTS")
        version = reader.take(1, "version")[0]
        if version == _WRITABLE:
            return _read_writable(reader)
        if version == _PROTOBUF:
            return _read_protobuf(reader)
        raise _Corrupt(f"unknown version {version} (known: 0 and 1)")
    except _Corrupt as exc:
        raise ValueError(f"{os.fspath(path)} is not a readable Hadoop token file: {exc}") from None


def hdfs_delegation_token(path: str | os.PathLike[str] | None = None, service: str | None = None) -> str | None:
    """The URL string of the HDFS delegation token for WebHDFS's ``delegation=``, or None.

    ``path`` defaults to ``$HADOOP_TOKEN_FILE_LOCATION``. Of several HDFS
    tokens, the one whose service is ``service`` (e.g. ``"ha-hdfs:ns1"`` or
    ``"10.0.0.1:8020"``), else the first. None when there is no file or no
    such token; ``ValueError`` for a corrupt file.
    """
    if path is None:
        path = os.environ.get(TOKEN_FILE_VARIABLE)
        if not path:
            return None
    try:
        tokens = [t for t in read_credentials(path) if t.kind == HDFS_DELEGATION_KIND]
    except FileNotFoundError:
        return None
    if not tokens:
        return None
    chosen = next((t for t in tokens if service is not None and t.service == service), tokens[0])
    return chosen.encode_url_string()
