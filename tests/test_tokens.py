"""Hadoop Credentials files and token URL strings (skein_jupyter.runtime.tokens).

The files are built here byte by byte after Hadoop's Java code: Credentials.write /
writeProto, Token.write, Text.write, WritableUtils.writeVLong, and Security.proto
(CredentialsProto{tokens=1, secrets=2}, CredentialsKVProto{alias=1, token=2, secret=3},
TokenProto{identifier=1, password=2, kind=3, service=4}). A yarn test checks the
same against files written by Hadoop's own classes.
"""
from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path

import pytest

from skein_jupyter.runtime.tokens import Token, hdfs_delegation_token, read_credentials

SECRET = b"SECRETPW"  # the password in these files: it must never show in a message or repr
HDFS = b"HDFS_DELEGATION_TOKEN"


def text(data: bytes) -> bytes:
    """Text.write of a short value: a one-byte vint length (0..127), then the bytes."""
    assert len(data) < 128
    return bytes([len(data)]) + data


def token_writable(identifier: bytes, password: bytes, kind: bytes, service: bytes) -> bytes:
    return text(identifier) + text(password) + text(kind) + text(service)


def pb(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field; lengths up to 16383 (one or two varint bytes)."""
    size = len(payload)
    length = bytes([size]) if size < 128 else bytes([size & 0x7F | 0x80, size >> 7])
    return bytes([number << 3 | 2]) + length + payload


def token_proto(identifier: bytes, password: bytes, kind: bytes, service: bytes) -> bytes:
    return pb(1, identifier) + pb(2, password) + pb(3, kind) + pb(4, service)


def protobuf_file(*entries: bytes) -> bytes:
    message = b"".join(entries)
    return b"HDTS\x01" + pb(0, message)[1:]  # writeDelimitedTo: varint length + message, no key


WRITABLE = (b"HDTS\x00" + b"\x02"
            + text(b"ha-hdfs:ns1") + token_writable(b"\x01id-a", SECRET, HDFS, b"ha-hdfs:ns1")
            + text(b"timeline") + token_writable(b"\x02id-b", SECRET, b"TIMELINE_DELEGATION_TOKEN", b"10.0.0.1:8188")
            + b"\x01" + text(b"a key") + text(SECRET))
PROTOBUF = protobuf_file(
    pb(1, pb(1, b"ha-hdfs:ns1") + pb(2, token_proto(b"\x01id-a", SECRET, HDFS, b"ha-hdfs:ns1"))),
    pb(1, pb(1, b"timeline") + pb(2, token_proto(b"\x02id-b", SECRET, b"TIMELINE_DELEGATION_TOKEN", b"10.0.0.1:8188"))),
    pb(2, pb(1, b"a key") + pb(3, SECRET)))


def write(tmp_path: Path, data: bytes, name: str = "tokens") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("data", [WRITABLE, PROTOBUF], ids=["writable", "protobuf"])
def test_both_formats_give_the_tokens_in_file_order(tmp_path: Path, data: bytes) -> None:
    tokens = read_credentials(write(tmp_path, data))
    assert [(t.alias, t.identifier, t.password, t.kind, t.service) for t in tokens] == [
        ("ha-hdfs:ns1", b"\x01id-a", SECRET, "HDFS_DELEGATION_TOKEN", "ha-hdfs:ns1"),
        ("timeline", b"\x02id-b", SECRET, "TIMELINE_DELEGATION_TOKEN", "10.0.0.1:8188")]
    assert "SECRETPW" not in repr(tokens) and "id-a" not in repr(tokens)


def test_writable_form_is_the_bytes_of_the_file(tmp_path: Path) -> None:
    """Round trip: each token re-serializes to exactly the Token.write bytes it was read from."""
    first, second = read_credentials(write(tmp_path, WRITABLE))
    assert first.writable() == token_writable(b"\x01id-a", SECRET, HDFS, b"ha-hdfs:ns1")
    assert WRITABLE.index(first.writable()) == 5 + 1 + 12
    assert second.writable() in WRITABLE
    # and the URL string decodes (padding restored) to those bytes again
    encoded = first.encode_url_string()
    assert base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)) == first.writable()


def test_url_string_known_answer() -> None:
    """Token.encodeToUrlString = Base64(lineLength 0, no separator, urlSafe) of Token.write, worked by hand:
    identifier FB FF BF, password empty, kind "K", service empty
    -> write: 03 FB FF BF | 00 | 01 4B | 00  (each a vint length, then the bytes; "K" is 0x4B)
    -> 6-bit groups: 03 FB FF = 000000 111111 101111 111111 = 0 63 47 63 -> A _ v _
                     BF 00 01 = 101111 110000 000000 000001 = 47 48 0 1 -> v w A B
                     4B 00    = 010010 110000 0000(00)      = 18 48 0   -> S w A
    (URL-safe alphabet: 62 is '-', 63 is '_'; commons-codec writes no '=' padding in URL-safe mode.)
    Standard Base64 would be "A/v/vwABSwA="."""
    token = Token("alias", b"\xfb\xff\xbf", b"", "K", "")
    assert token.writable() == bytes.fromhex("03fbffbf00014b00")
    assert token.encode_url_string() == "A_v_vwABSwA"


def test_lengths_above_127_use_the_multi_byte_vint(tmp_path: Path) -> None:
    """writeVLong(200): -112 - 1 data byte = -113 = 0x8F, then 0xC8; protobuf's varint of 200 is C8 01."""
    identifier = bytes(range(200))
    writable = (b"HDTS\x00\x01" + text(b"a") + b"\x8f\xc8" + identifier + text(SECRET) + text(HDFS) + text(b"s")
                + b"\x00")
    proto = protobuf_file(pb(1, pb(1, b"a") + pb(2, token_proto(identifier, SECRET, HDFS, b"s"))))
    assert b"\x0a\xc8\x01" + identifier in proto  # TokenProto.identifier: key 1 << 3 | 2 = 0x0A
    for data in (writable, proto):
        (token,) = read_credentials(write(tmp_path, data))
        assert token.identifier == identifier and token.service == "s"
        assert token.writable().startswith(b"\x8f\xc8" + identifier)


def test_more_than_127_tokens(tmp_path: Path) -> None:
    """writeVInt(130) = 8F 82; aliases are unique, so all 130 tokens come back in order."""
    body = b"".join(text(b"t%d" % i) + token_writable(b"%d" % i, SECRET, HDFS, b"s") for i in range(130))
    tokens = read_credentials(write(tmp_path, b"HDTS\x00\x8f\x82" + body + b"\x00"))
    assert [t.alias for t in tokens] == [f"t{i}" for i in range(130)]


def test_a_repeated_alias_keeps_its_last_token(tmp_path: Path) -> None:
    """As Credentials' map does."""
    data = (b"HDTS\x00\x02" + text(b"a") + token_writable(b"old", SECRET, HDFS, b"s")
            + text(b"a") + token_writable(b"new", SECRET, HDFS, b"s") + b"\x00")
    assert [t.identifier for t in read_credentials(write(tmp_path, data))] == [b"new"]


def test_protobuf_fields_unknown_to_us_are_skipped(tmp_path: Path) -> None:
    """A newer writer may add fields: varint (key 0x28 = field 5) and fixed32 (0x35) ones are stepped over."""
    token = token_proto(b"id", SECRET, HDFS, b"s") + b"\x28\x96\x01" + b"\x35\x00\x00\x00\x00"
    (parsed,) = read_credentials(write(tmp_path, protobuf_file(pb(1, pb(1, b"a") + pb(2, token)))))
    assert (parsed.identifier, parsed.kind, parsed.service) == (b"id", "HDFS_DELEGATION_TOKEN", "s")


@pytest.mark.parametrize("data, message", [
    (b"HDTS\x00\x01" + text(b"a") + b"\xff" + SECRET, "negative length -1 for token identifier"),
    (b"HDTS\x00\x87\x80", "negative token count -129"),  # writeVLong(-129): ~(-129) = 128 -> 0x87 (-121), 0x80
    (b"HDTS\x00\x8b\x01\x00\x00\x00\x00", "does not fit in an int"),  # 5 data bytes: 2**32
    (b"NOPE\x00\x00\x00", "does not start with HDTS"),
    (b"HDTS\x07", "unknown version 7"),
    (b"HDTS\x01\x05" + b"\x0b\x03abc", "wire type 3"),
    (b"HDTS\x01" + b"\xff" * 11, "not a varint"),
], ids=["negative-length", "negative-count", "int-overflow", "magic", "version", "wire-type", "varint"])
def test_corrupt_files_say_what_is_wrong(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path, data, "corrupt-tokens")
    with pytest.raises(ValueError, match="corrupt-tokens is not a readable Hadoop token file") as error:
        read_credentials(path)
    assert message in str(error.value)
    assert "SECRETPW" not in str(error.value)


@pytest.mark.parametrize("data", [WRITABLE, PROTOBUF], ids=["writable", "protobuf"])
def test_every_truncation_is_a_clear_error_without_token_bytes(tmp_path: Path, data: bytes) -> None:
    """Cut anywhere before its end, a file gives a ValueError (never IndexError or a half list)."""
    for size in range(len(data)):
        path = write(tmp_path, data[:size])
        with pytest.raises(ValueError) as error:
            read_credentials(path)
        message = str(error.value)
        assert str(path) in message and "truncated" in message, message
        assert "SECRET" not in message and "id-a" not in message and "\\x" not in message


def test_hdfs_delegation_token_picks_by_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = (b"HDTS\x00\x03"
            + text(b"rm") + token_writable(b"rm", SECRET, b"RM_DELEGATION_TOKEN", b"10.0.0.1:8032")
            + text(b"nn1") + token_writable(b"nn1", SECRET, HDFS, b"10.0.0.1:8020")
            + text(b"ns1") + token_writable(b"ns1", SECRET, HDFS, b"ha-hdfs:ns1") + b"\x00")
    path = write(tmp_path, data)
    tokens = {t.alias: t.encode_url_string() for t in read_credentials(path)}
    assert hdfs_delegation_token(path, service="ha-hdfs:ns1") == tokens["ns1"]
    assert hdfs_delegation_token(path, service="10.0.0.1:8020") == tokens["nn1"]
    assert hdfs_delegation_token(path, service="elsewhere:8020") == tokens["nn1"]  # the first HDFS token
    assert hdfs_delegation_token(path) == tokens["nn1"]
    monkeypatch.setenv("HADOOP_TOKEN_FILE_LOCATION", str(path))
    assert hdfs_delegation_token(service="ha-hdfs:ns1") == tokens["ns1"]


def test_hdfs_delegation_token_none_without_file_or_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HADOOP_TOKEN_FILE_LOCATION", raising=False)
    assert hdfs_delegation_token() is None
    monkeypatch.setenv("HADOOP_TOKEN_FILE_LOCATION", str(tmp_path / "absent"))
    assert hdfs_delegation_token() is None
    only_rm = b"HDTS\x00\x01" + text(b"rm") + token_writable(b"rm", SECRET, b"RM_DELEGATION_TOKEN", b"r:8032") + b"\x00"
    assert hdfs_delegation_token(write(tmp_path, only_rm)) is None
    assert hdfs_delegation_token(write(tmp_path, b"HDTS\x01\x00")) is None  # an empty CredentialsProto
    with pytest.raises(ValueError, match="bad-tokens"):
        hdfs_delegation_token(write(tmp_path, WRITABLE[:30], "bad-tokens"))


JAVA_WRITER = """
import java.io.DataOutputStream;
import java.io.FileOutputStream;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.security.Credentials;
import org.apache.hadoop.security.token.Token;

public class WriteCredentials {
  public static void main(String[] args) throws Exception {
    Credentials creds = new Credentials();
    byte[] id = new byte[300];
    for (int i = 0; i < id.length; i++) id[i] = (byte) (i * 7);
    creds.addToken(new Text("ha-hdfs:ns1"), new Token<>(id, new byte[] {-1, 0, 1},
        new Text("HDFS_DELEGATION_TOKEN"), new Text("ha-hdfs:ns1")));
    creds.addToken(new Text("timeline"), new Token<>(new byte[] {-5, -1, -65}, new byte[0],
        new Text("TIMELINE_DELEGATION_TOKEN"), new Text("10.0.0.1:8188")));
    creds.addSecretKey(new Text("key"), new byte[] {1, 2, 3});
    String[] formats = {"WRITABLE", "PROTOBUF"};
    for (int i = 0; i < 2; i++) {
      try (DataOutputStream out = new DataOutputStream(new FileOutputStream(args[i]))) {
        creds.writeTokenStorageToStream(out, Credentials.SerializedFormat.valueOf(formats[i]));
      }
    }
    for (String alias : new String[] {"ha-hdfs:ns1", "timeline"}) {
      System.out.println(alias + " " + creds.getToken(new Text(alias)).encodeToUrlString());
    }
  }
}
"""


@pytest.mark.yarn
def test_files_written_by_hadoop(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Hadoop's Credentials writes both formats; we read the same tokens and URL strings as its encodeToUrlString."""
    from skein_jupyter.sandbox.config import SandboxConfig
    from skein_jupyter.sandbox.java import find_java

    config = SandboxConfig.load()
    if not any(config.jar_cache.glob("hadoop-common-*.jar")):
        config = request.getfixturevalue("sandbox").config  # bringing the sandbox up fetches the jars
    source = tmp_path / "WriteCredentials.java"
    source.write_text(JAVA_WRITER)
    files = [tmp_path / "writable", tmp_path / "protobuf"]
    start = time.monotonic()
    # C1 only and the serial collector: a third of the CPU time of the defaults, which counts on a busy 2-core box.
    java = [str(find_java(config.java_home).java), "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    result = subprocess.run([*java, "-cp", str(config.jar_cache / "*"), str(source), *map(str, files)],
                            capture_output=True, text=True, timeout=120)
    print(f"java wrote the credentials in {time.monotonic() - start:.1f}s")
    assert result.returncode == 0, result.stderr
    expected = dict(line.split(" ") for line in result.stdout.splitlines())
    assert [f.read_bytes()[4] for f in files] == [0, 1]
    for path in files:
        tokens = read_credentials(path)
        assert {t.alias: t.encode_url_string() for t in tokens} == expected
        assert {t.alias: t.identifier for t in tokens}["ha-hdfs:ns1"] == bytes(i * 7 % 256 for i in range(300))
        assert hdfs_delegation_token(path, service="ha-hdfs:ns1") == expected["ha-hdfs:ns1"]
