"""TLS you can verify: a ``--tls`` server publishes its certificate's SHA-256, and clients pin it.

On the sandbox: the certificate fetched over TCP is the one published, a
request through the pinned context succeeds, one pinned to another
certificate fails, and the key stays private in the container.
"""
import uuid
import json
import os
import ssl
import stat
import urllib.error
import urllib.request

import pytest
import skein
from click.testing import CliRunner

from skein_jupyter.cli import cli
from skein_jupyter.config import load_recipe
from skein_jupyter.notebook import ServerInfo, start, stop
from skein_jupyter.runtime import keys
from skein_jupyter.tls import certificate_fingerprint, ssl_context, verify_certificate


def _other_certificate():
    return skein.Security.new_credentials().cert_bytes.decode()


def _server(**changes):
    fields = {"app_id": "application_1_0001", "protocol": "https", "host": "localhost", "port": 1,
              "base_url": "/", "token": "t", "frontend": "server"}
    return ServerInfo(**{**fields, **changes})


# ----- no cluster

def test_the_fingerprint_is_openssls_sha256_form():
    der = ssl.PEM_cert_to_DER_cert(_other_certificate())
    fingerprint = certificate_fingerprint(der)
    parts = fingerprint.split(":")
    assert len(parts) == 32 and all(len(p) == 2 and p == p.upper() for p in parts)


def test_a_different_certificate_is_refused():
    pem = _other_certificate()
    server = _server(tls_fingerprint=certificate_fingerprint(ssl.PEM_cert_to_DER_cert(pem)))
    verify_certificate(server, pem)
    with pytest.raises(ssl.SSLCertVerificationError, match="this is not the server"):
        verify_certificate(server, _other_certificate())


def test_an_http_server_has_nothing_to_pin():
    from skein_jupyter.exceptions import UsageError

    with pytest.raises(UsageError, match="start the server with --tls"):
        ssl_context(_server(protocol="http"), certificate=_other_certificate())


def test_servers_of_older_versions_still_parse():
    published = {"protocol": "http", "host": "h", "port": 1, "base_url": "/", "token": "t"}
    assert ServerInfo(app_id="a", **published).tls_fingerprint is None


# ----- on the sandbox

@pytest.fixture(scope="module")
def tls_server(uploaded_venv, skein_client):
    recipe, _ = load_recipe(kind="notebook", environ={}, flags={
        "environment": uploaded_venv.url, "resources.memory": "1 GiB", "notebook.frontend": "server",
        "notebook.tls": True, "notebook.workspace": f"t-{uuid.uuid4().hex[:10]}"})
    server = start(recipe, skein_client, timeout=600)
    yield server
    if str(skein_client.application_report(server.app_id).state) not in ("FINISHED", "FAILED", "KILLED"):
        stop(skein_client, server.app_id)


def _status(server, context):
    url = f"https://{server.host}:{server.port}{server.base_url}api/status"
    request = urllib.request.Request(url, headers={"Authorization": f"token {server.token}"})
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return response.status, json.load(response)


@pytest.mark.yarn
def test_the_certificate_served_is_the_one_published(tls_server, skein_client):
    assert tls_server.protocol == "https" and tls_server.tls_fingerprint
    served = ssl.get_server_certificate((tls_server.host, tls_server.port), timeout=30)
    assert certificate_fingerprint(ssl.PEM_cert_to_DER_cert(served)) == tls_server.tls_fingerprint
    published_pem = skein_client.connect(tls_server.app_id).kv[keys.NOTEBOOK_CERTIFICATE].decode()
    assert ssl.PEM_cert_to_DER_cert(published_pem) == ssl.PEM_cert_to_DER_cert(served)


@pytest.mark.yarn
def test_a_pinned_request_succeeds_and_another_pin_fails(tls_server):
    status, body = _status(tls_server, ssl_context(tls_server))
    assert status == 200 and "started" in body
    # A context that trusts another certificate: the handshake itself fails.
    other = ssl.create_default_context(cadata=_other_certificate())
    other.check_hostname = False
    with pytest.raises(urllib.error.URLError) as info:
        _status(tls_server, other)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)
    # A server record with another fingerprint: refused before the token is sent.
    forged = ServerInfo(**{**tls_server.to_dict(), "tls_fingerprint": certificate_fingerprint(
        ssl.PEM_cert_to_DER_cert(_other_certificate()))})
    with pytest.raises(ssl.SSLCertVerificationError, match="this is not the server"):
        ssl_context(forged)
    # The default context (system CAs, host names) does not trust it either: pinning is what does.
    with pytest.raises(urllib.error.URLError):
        _status(tls_server, ssl.create_default_context())


@pytest.mark.yarn
def test_info_prints_the_fingerprint_and_json_has_it(tls_server):
    result = CliRunner().invoke(cli, ["notebook", "info", tls_server.app_id])
    assert result.exit_code == 0, result.output
    assert f"TLS certificate SHA-256:    {tls_server.tls_fingerprint}" in result.output
    as_json = CliRunner().invoke(cli, ["notebook", "info", tls_server.app_id, "--json"])
    assert json.loads(as_json.output)["tls_fingerprint"] == tls_server.tls_fingerprint


@pytest.mark.yarn
def test_the_key_file_is_private_in_the_container(tls_server, sandbox):
    appcache = sandbox.config.data_dir / "nm-local" / "usercache"
    keys_found = list(appcache.glob(f"*/appcache/{tls_server.app_id}/container_*/.jupyter-runtime/server.key"))
    assert len(keys_found) == 1, keys_found
    mode = stat.S_IMODE(os.stat(keys_found[0]).st_mode)
    assert mode == 0o600, oct(mode)
