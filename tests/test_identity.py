"""The Hadoop identity: simple authentication, Kerberos (core-site.xml + klist), proxy users. No cluster."""
import getpass
import stat

import pytest

from skein_jupyter.exceptions import UsageError
from skein_jupyter.identity import hadoop_user, parse_klist, read_authentication, security_enabled, short_name

MIT_KLIST = """\
Ticket cache: FILE:/tmp/krb5cc_1000
Default principal: alice/edge01.example.com@EXAMPLE.COM

Valid starting       Expires              Service principal
12/01/2026 09:00:00  12/01/2026 19:00:00  krbtgt/EXAMPLE.COM@EXAMPLE.COM
"""

HEIMDAL_KLIST = """\
Credentials cache: FILE:/tmp/krb5cc_1000
        Principal: bob@EXAMPLE.COM

  Issued                Expires               Principal
Dec  1 09:00:00 2026  Dec  1 19:00:00 2026  krbtgt/EXAMPLE.COM@EXAMPLE.COM
"""


def core_site(directory, authentication):
    (directory / "core-site.xml").write_text(
        '<?xml version="1.0"?>\n<configuration>\n'
        "  <property><name>fs.defaultFS</name><value>hdfs://nn:8020</value></property>\n"
        f"  <property><name>hadoop.security.authentication</name><value>{authentication}</value></property>\n"
        "</configuration>\n")
    return directory


def fake_klist(directory, output, valid=True):
    """A ``klist`` that prints ``output``; ``klist -s`` answers whether the ticket is valid."""
    script = directory / "klist"
    script.write_text("#!/bin/sh\n"
                      f'if [ "$1" = "-s" ]; then exit {0 if valid else 1}; fi\n'
                      f"printf '%s' '{output}'\n"  # a shell builtin: PATH holds only this directory
                      f"exit {0 if valid else 1}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return directory


@pytest.fixture
def hadoop_env(monkeypatch, tmp_path):
    """A clean environment: no Hadoop configuration, no HADOOP_USER_NAME, an empty bin directory on PATH."""
    conf, bin_dir = tmp_path / "conf", tmp_path / "bin"
    conf.mkdir()
    bin_dir.mkdir()
    monkeypatch.delenv("HADOOP_USER_NAME", raising=False)
    monkeypatch.delenv("HADOOP_HOME", raising=False)
    monkeypatch.setenv("HADOOP_CONF_DIR", str(conf))
    monkeypatch.setenv("PATH", str(bin_dir))
    return conf, bin_dir


def test_short_name():
    assert short_name("alice@EXAMPLE.COM") == "alice"
    assert short_name("alice/edge01.example.com@EXAMPLE.COM") == "alice"
    assert short_name("svc") == "svc"


@pytest.mark.parametrize("output, expected", [
    (MIT_KLIST, "alice/edge01.example.com@EXAMPLE.COM"),
    (HEIMDAL_KLIST, "bob@EXAMPLE.COM"),
    ("klist: No credentials cache found (filename: /tmp/krb5cc_1000)\n", None),
    ("", None),
])
def test_parse_klist(output, expected):
    assert parse_klist(output) == expected


@pytest.mark.parametrize("text, expected", [
    ("<configuration><property><name>hadoop.security.authentication</name><value>kerberos</value>"
     "</property></configuration>", "kerberos"),
    ("<configuration><property><name>hadoop.security.authentication</name><value>simple</value>"
     "</property></configuration>", "simple"),
    ("<configuration><property><name>fs.defaultFS</name><value>hdfs://nn</value></property></configuration>",
     "simple"),
    ("not xml at all", "simple"),
])
def test_read_authentication(text, expected):
    assert read_authentication(text) == expected


def test_simple_auth_uses_login_name(hadoop_env):
    core_site(hadoop_env[0], "simple")
    assert not security_enabled()
    assert hadoop_user() == getpass.getuser()


def test_simple_auth_honours_hadoop_user_name(hadoop_env, monkeypatch):
    monkeypatch.setenv("HADOOP_USER_NAME", "etl")
    assert hadoop_user() == "etl"
    # Under simple authentication a recipe's principal means nothing to Hadoop.
    assert hadoop_user(principal="alice@EXAMPLE.COM") == "etl"


def test_no_configuration_is_simple(hadoop_env, monkeypatch):
    monkeypatch.delenv("HADOOP_CONF_DIR")
    assert not security_enabled()
    assert hadoop_user() == getpass.getuser()


def test_kerberos_uses_the_ticket_principal(hadoop_env, monkeypatch):
    conf, bin_dir = hadoop_env
    core_site(conf, "kerberos")
    fake_klist(bin_dir, MIT_KLIST)
    monkeypatch.setenv("HADOOP_USER_NAME", "ignored")  # Hadoop ignores it under Kerberos
    assert security_enabled()
    assert hadoop_user() == "alice"


def test_kerberos_core_site_under_hadoop_home(hadoop_env, monkeypatch, tmp_path):
    conf, bin_dir = hadoop_env
    monkeypatch.delenv("HADOOP_CONF_DIR")
    home = tmp_path / "hadoop"
    (home / "etc" / "hadoop").mkdir(parents=True)
    core_site(home / "etc" / "hadoop", "kerberos")
    monkeypatch.setenv("HADOOP_HOME", str(home))
    fake_klist(bin_dir, HEIMDAL_KLIST)
    assert hadoop_user() == "bob"


def test_kerberos_keytab_principal_wins_over_the_ticket(hadoop_env):
    conf, bin_dir = hadoop_env
    core_site(conf, "kerberos")
    fake_klist(bin_dir, MIT_KLIST)
    assert hadoop_user(principal="svc-etl/batch01@EXAMPLE.COM") == "svc-etl"


def test_kerberos_without_a_ticket_says_kinit(hadoop_env):
    conf, bin_dir = hadoop_env
    core_site(conf, "kerberos")
    fake_klist(bin_dir, "klist: No credentials cache found (filename: /tmp/krb5cc_1000)\n", valid=False)
    with pytest.raises(UsageError, match=r"no valid ticket.*run `kinit`"):
        hadoop_user()


def test_kerberos_without_klist_says_so(hadoop_env):
    core_site(hadoop_env[0], "kerberos")
    with pytest.raises(UsageError, match=r"no `klist` on PATH.*`kinit`"):
        hadoop_user()


def test_proxy_user_wins(hadoop_env, monkeypatch):
    conf, bin_dir = hadoop_env
    monkeypatch.setenv("HADOOP_USER_NAME", "etl")
    assert hadoop_user(proxy_user="carol") == "carol"
    core_site(conf, "kerberos")  # no ticket needed: the proxy user is given
    assert hadoop_user(proxy_user="carol", principal="svc@EXAMPLE.COM") == "carol"
