"""User credentials against a real ``skiff apiserver`` and the real kubectl 1.32.

* ``skiff user create`` writes a kubeconfig kubectl uses as that user; RBAC
  refuses it until a RoleBinding grants something; ``skiff user revoke`` makes
  the server answer 401 within seconds (no restart); an expired certificate is
  401 per request, as upstream's x509 authenticator answers, not a failed handshake.
* The serving certificate is replaced while the server runs: new connections
  see the new serial, a watch opened before keeps streaming.
* ServiceAccount signing key rotation across restarts with
  ``--service-account-signing-key-file`` / ``--service-account-key-file``.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver_harness import KUBECTL, RunningApiServer, running_apiserver
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from skiff.apiserver import kubeconfig
from skiff.apiserver.pki import ensure_pki, issue_client_cert

DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("user-credentials")) as running:
        yield running


def _skiff_user(server: RunningApiServer, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "skiff.cli.main", "user", *args, "--data-dir", str(server.data_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def _kubectl(config: Path, cache: Path, *args: str) -> tuple[int, str, str]:
    cmd = [KUBECTL, "--kubeconfig", str(config), "--cache-dir", str(cache), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout, done.stderr


def _eventually(check: Callable[[], tuple[bool, str]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    last = ""
    while time.monotonic() < deadline:
        done, last = check()
        if done:
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen in {DEADLINE_S:g}s; last: {last}")


def test_user_kubeconfig_rbac_and_revocation(server: RunningApiServer, tmp_path: Path) -> None:
    config = tmp_path / "alice.kubeconfig"
    created = _skiff_user(server, "create", "alice", "--group", "devs", "--server", server.url, "--out", str(config))
    assert created.returncode == 0, created.stderr
    assert config.stat().st_mode & 0o777 == 0o600
    cache = tmp_path / "cache"

    code, out, err = _kubectl(config, cache, "auth", "whoami", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["status"]["userInfo"] == {"username": "alice", "groups": ["devs", "system:authenticated"]}

    code, _, err = _kubectl(config, cache, "get", "pods", "-n", "default")
    assert code != 0 and 'User "alice" cannot list resource "pods"' in err and "Forbidden" in err, err
    _kubectl_admin(server, tmp_path, "create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods")
    _kubectl_admin(server, tmp_path, "create", "rolebinding", "devs-read-pods", "--role=pod-reader", "--group=devs")

    def can_list() -> tuple[bool, str]:
        code, _, err = _kubectl(config, cache, "get", "pods", "-n", "default")
        return code == 0, err

    _eventually(can_list, "alice listing pods after the RoleBinding")
    listed = _skiff_user(server, "list")
    assert listed.returncode == 0 and _row(listed.stdout, "alice")[-1] == "valid", listed.stdout

    revoked = _skiff_user(server, "revoke", "alice")
    assert revoked.returncode == 0 and "revoked serial" in revoked.stdout, revoked.stderr

    def refused() -> tuple[bool, str]:
        code, _, err = _kubectl(config, cache, "get", "pods", "-n", "default")
        return code != 0 and "You must be logged in to the server (Unauthorized)" in err, err

    _eventually(refused, "the revoked certificate being refused")
    assert _row(_skiff_user(server, "list").stdout, "alice")[-1] == "revoked"
    status, _, _ = server.request("GET", "/api")  # the admin's certificate is not affected
    assert status == 200


def _row(table: str, name: str) -> list[str]:
    return next(line.split() for line in table.splitlines() if line.split()[:1] == [name])


def _kubectl_admin(server: RunningApiServer, tmp_path: Path, *args: str) -> str:
    code, out, err = _kubectl(server.kubeconfig, tmp_path / "admin-cache", *args)
    assert code == 0, err
    return out


def test_masters_need_allow_masters(server: RunningApiServer) -> None:
    refused = _skiff_user(server, "create", "root", "--group", "system:masters", "--server", server.url)
    assert refused.returncode == 1 and "--allow-masters" in refused.stderr
    assert refused.stdout == ""


def test_expired_certificate_is_refused(server: RunningApiServer, tmp_path: Path) -> None:
    cert, key = issue_client_cert(
        server.pki, tmp_path / "late", "late", ["devs"], lifetime=datetime.timedelta(minutes=-1)
    )
    config = tmp_path / "late.kubeconfig"
    built = kubeconfig.build(server.url, server.pki, "late", client_cert=cert, client_key=key)
    kubeconfig.write(config, built, merge_existing=False)
    code, _, err = _kubectl(config, tmp_path / "cache", "auth", "whoami")
    # As kube-apiserver's x509 authenticator: the handshake completes and the request is 401.
    assert code != 0 and "You must be logged in to the server (Unauthorized)" in err, err
    context = server.ssl_context(client_cert=False)
    context.load_cert_chain(str(cert), str(key))
    connection = http.client.HTTPSConnection(server.host, server.port, context=context, timeout=10)
    try:
        connection.request("GET", "/api")
        answer = connection.getresponse()
        assert answer.status == 401
        assert json.loads(answer.read())["reason"] == "Unauthorized"
    finally:
        connection.close()
    # The same subject with a current certificate is let in: only the dates differ.
    cert, key = issue_client_cert(server.pki, tmp_path / "ontime", "late", ["devs"])
    built = kubeconfig.build(server.url, server.pki, "late", client_cert=cert, client_key=key)
    kubeconfig.write(config, built, merge_existing=False)
    whoami = ("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    code, out, err = _kubectl(config, tmp_path / "cache", *whoami)
    assert code == 0 and out == "late", err


# -- serving certificate rotation -------------------------------------------------------------------------------


def _serving_serial(server: RunningApiServer) -> int:
    """The serial of the certificate a new TLS connection is shown."""
    context = server.ssl_context(client_cert=False)
    with (
        socket.create_connection((server.host, server.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server.host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _serial_of(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def test_serving_certificate_reloads_without_a_restart(server: RunningApiServer, tmp_path: Path) -> None:
    first = _serial_of(server.pki.serving_cert)
    assert _serving_serial(server) == first
    name = "rotation-watch"
    watch = http.client.HTTPSConnection(server.host, server.port, context=server.ssl_context(), timeout=30)
    path = f"/api/v1/namespaces/default/configmaps?watch=1&fieldSelector=metadata.name%3D{name}"
    watch.request("GET", path)
    stream = watch.getresponse()
    assert stream.status == 200
    try:
        ensure_pki(server.data_dir, ["127.0.0.1", "rotated.skiff.test"])  # a new SAN: reissued from the same CA
        second = _serial_of(server.pki.serving_cert)
        assert second != first

        def new_serial() -> tuple[bool, str]:
            seen = _serving_serial(server)
            return seen == second, f"serial {seen:x}"

        _eventually(new_serial, "new connections seeing the new serving certificate")
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}
        status, _, raw = server.request(  # a new connection, with the admin's client certificate
            "POST", "/api/v1/namespaces/default/configmaps", json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 201, raw
        event: dict[str, Any] = json.loads(stream.readline())  # the watch opened before the swap still streams
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", name)
    finally:
        watch.close()


# -- ServiceAccount signing key rotation --------------------------------------------------------------------------


def _token_for(server: RunningApiServer, account: str) -> str:
    body = json.dumps({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}}).encode()
    headers = {"Content-Type": "application/json"}
    status, _, _ = server.request("POST", "/api/v1/namespaces/default/serviceaccounts", body, headers)
    assert status in (201, 409)
    request = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}).encode()
    path = f"/api/v1/namespaces/default/serviceaccounts/{account}/token"
    status, _, raw = server.request("POST", path, request, headers)
    assert status == 201, raw
    return str(json.loads(raw)["status"]["token"])


def _status_with(server: RunningApiServer, token: str) -> int:
    status, _, _ = server.request("GET", "/api", headers={"Authorization": f"Bearer {token}"}, client_cert=False)
    return status


def _jwks_kids(server: RunningApiServer) -> list[str]:
    status, _, raw = server.request("GET", "/openid/v1/jwks")
    assert status == 200, raw
    return [key["kid"] for key in json.loads(raw)["keys"]]


def test_service_account_signing_key_rotation(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_apiserver(tmp_path / "first", data_dir=data_dir) as first:
        token_a = _token_for(first, "rotated")
        assert _status_with(first, token_a) == 200
        (kid_a,) = _jwks_kids(first)

    key_b = tmp_path / "sa-b.key"
    fd = os.open(key_b, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    old_public = str(data_dir / "pki" / "sa.pub")
    signing = ("--service-account-signing-key-file", str(key_b))
    with running_apiserver(
        tmp_path / "rotating", *signing, "--service-account-key-file", old_public, data_dir=data_dir
    ) as rotating:
        assert _status_with(rotating, token_a) == 200  # signed by A, verified by the listed public key
        token_b = _token_for(rotating, "rotated")
        assert _status_with(rotating, token_b) == 200
        kids = _jwks_kids(rotating)
        assert len(kids) == 2 and kids[1] == kid_a  # the signing key first, then every listed key

    with running_apiserver(tmp_path / "rotated", *signing, data_dir=data_dir) as rotated:
        assert _status_with(rotated, token_a) == 401  # A no longer listed
        assert _status_with(rotated, token_b) == 200
        assert kid_a not in _jwks_kids(rotated)
