"""User client certificates, their revocation list, serving-certificate reload, ServiceAccount key rotation (pure
parts and in-memory TLS; the real server and kubectl are in tests/apiserver/test_user_credentials.py)."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from skiff.apiserver.auth import Authenticator, UserInfo
from skiff.apiserver.dynamic_certs import RevokedSerials, ServingCertificate, file_stamp
from skiff.apiserver.pki import Pki, ensure_pki, issue_client_cert
from skiff.apiserver.serviceaccount_tokens import (
    ServiceAccountTokens,
    SigningKey,
    VerificationKey,
    load_signing_key,
    load_verification_keys,
    public_jwk,
)
from skiff.apiserver.user_certs import (
    IssuedCert,
    issue_user,
    load_registry,
    parse_revoked_serials,
    parse_serial,
    revoke,
    revoked_serials_path,
    users_dir,
)
from skiff.cli.main import main

# -- serials and the revocation list -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("0A1B", 0x0A1B, id="openssl-upper"),
        pytest.param("a1b", 0x0A1B, id="lower-no-padding"),
        pytest.param("0a:1b", 0x0A1B, id="colons"),
        pytest.param(" 0x0A1B\n", 0x0A1B, id="prefix-and-space"),
    ],
)
def test_parse_serial(text: str, expected: int) -> None:
    assert parse_serial(text) == expected


@pytest.mark.parametrize("text", [pytest.param("", id="empty"), pytest.param("xyz", id="not-hex")])
def test_parse_serial_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a hex serial"):
        parse_serial(text)


def test_revoked_list_skips_comments_and_blanks() -> None:
    text = "# header\n\n0A  # alice\nff\n"
    assert parse_revoked_serials(text) == frozenset({0x0A, 0xFF})


def test_revoked_list_names_a_bad_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_revoked_serials("0a\nnot-a-serial\n")


# -- the authenticator's revocation check ---------------------------------------------------------------------

CERT = {
    "subject": ((("organizationName", "devs"),), (("commonName", "alice"),)),
    "serialNumber": "0ABC",
    "notBefore": "Nov 27 09:00:00 2025 GMT",
    "notAfter": "Nov 27 09:00:00 2125 GMT",
}
ALICE = UserInfo("alice", "", ("devs", "system:authenticated"))
BOB = UserInfo("bob", "u2", ("system:authenticated",))


@pytest.mark.parametrize(
    ("revoked", "authorization", "expected"),
    [
        pytest.param(None, None, ALICE, id="no-list"),
        pytest.param(frozenset({0xDEAD}), None, ALICE, id="not-listed"),
        pytest.param(frozenset({0xABC}), None, None, id="revoked-is-unauthorized-not-anonymous"),
        pytest.param(frozenset({0xABC}), "Bearer plain", BOB, id="revoked-cert-but-token"),
        pytest.param(frozenset({0xABC}), "Bearer wrong", None, id="revoked-cert-bad-token"),
    ],
)
def test_revoked_certificate_does_not_authenticate(
    revoked: frozenset[int] | None, authorization: str | None, expected: UserInfo | None
) -> None:
    check = None if revoked is None else (lambda serial: parse_serial(serial) in revoked)
    authenticator = Authenticator({"plain": BOB}, revoked=check)
    assert authenticator.authenticate(CERT, authorization) == expected


async def test_revoked_serials_follow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "revoked-serials"
    revoked = RevokedSerials(path)
    revoked.load()
    assert not revoked("0ABC")
    path.write_text("abc\n")
    assert await revoked.refresh()
    assert revoked("0ABC") and revoked("abc") and not revoked("0ABD")
    assert not await revoked.refresh()  # unchanged: not read again
    path.write_text("abc\nnonsense\n")
    assert not await revoked.refresh()  # malformed: the previous list stays in force
    assert revoked("0ABC")
    path.unlink()
    assert await revoked.refresh()
    assert not revoked("0ABC")


def test_revoked_serials_refuse_to_start_on_a_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "revoked-serials"
    path.write_text("zz\n")
    with pytest.raises(ValueError, match="revoked-serials: line 1"):
        RevokedSerials(path).load()


# -- issuing, listing, revoking ---------------------------------------------------------------------------------


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return ensure_pki(tmp_path / "data")


def _subject(cert: x509.Certificate) -> tuple[str, list[str]]:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return str(cn), orgs


def test_issue_user_records_and_keeps_no_key(pki: Pki) -> None:
    record, config = issue_user(
        pki, "https://127.0.0.1:6443", "alice", ["devs", "ops", "devs"], datetime.timedelta(hours=2)
    )
    assert (record.name, record.groups, record.revoked) == ("alice", ("devs", "ops"), False)
    assert load_registry(pki) == [record]
    cert = x509.load_pem_x509_certificate((users_dir(pki) / f"{record.serial}.crt").read_bytes())
    assert _subject(cert) == ("alice", ["devs", "ops"])
    assert format(cert.serial_number, "x") == record.serial
    remaining = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(hours=1, minutes=59) < remaining <= datetime.timedelta(hours=2)
    assert record.not_after == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert config["current-context"] == "alice@skiff"
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert config["users"][0]["user"]["client-key-data"]
    assert sorted(p.name for p in users_dir(pki).iterdir()) == [".lock", f"{record.serial}.crt", "issued.json"]


def test_revoke_by_name_and_by_serial(pki: Pki) -> None:
    lifetime = datetime.timedelta(hours=1)
    first, _ = issue_user(pki, "https://x", "alice", [], lifetime)
    second, _ = issue_user(pki, "https://x", "alice", ["devs"], lifetime)
    bob, _ = issue_user(pki, "https://x", "bob", [], lifetime)
    done = revoke(pki, name="alice")
    assert [r.serial for r in done] == [first.serial, second.serial] and all(r.revoked for r in done)
    with pytest.raises(LookupError):
        revoke(pki, name="alice")
    assert revoke(pki, serial=bob.serial.upper()) == [IssuedCert(bob.serial, "bob", (), bob.not_after, True)]
    assert revoke(pki, serial="0A:BC") == [IssuedCert("abc", "", (), "", True)]
    listed = parse_revoked_serials(revoked_serials_path(pki).read_text())
    assert listed == {parse_serial(s) for s in (first.serial, second.serial, bob.serial, "abc")}
    assert [r.revoked for r in load_registry(pki)] == [True, True, True]
    now = datetime.datetime.now(datetime.UTC)
    assert [r.status(now) for r in load_registry(pki)] == ["revoked"] * 3


def test_revoke_keeps_hand_written_lines(pki: Pki) -> None:
    revoked_serials_path(pki).write_text("# mine\n0f")  # no final newline
    revoke(pki, serial="10")
    assert revoked_serials_path(pki).read_text() == "# mine\n0f\n10\n"


@pytest.mark.parametrize(
    ("not_after", "revoked", "status"),
    [
        pytest.param("2030-01-01T00:00:00Z", False, "valid", id="valid"),
        pytest.param("2020-01-01T00:00:00Z", False, "expired", id="expired"),
        pytest.param("2020-01-01T00:00:00Z", True, "revoked", id="revoked-wins"),
    ],
)
def test_status(not_after: str, revoked: bool, status: str) -> None:
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    assert IssuedCert("a", "alice", (), not_after, revoked).status(now) == status


def test_issue_client_cert_lifetime_may_be_in_the_past(pki: Pki, tmp_path: Path) -> None:
    cert_path, _ = issue_client_cert(pki, tmp_path / "old", "old", lifetime=datetime.timedelta(minutes=-1))
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.not_valid_before_utc < cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        pytest.param(["--group", "system:masters"], 1, "add --allow-masters", id="masters-refused"),
        pytest.param(["--group", "system:masters", "--allow-masters"], 0, "issued root", id="masters-deliberate"),
        pytest.param(["--duration", "0"], 1, "must be positive", id="forever-refused"),
        pytest.param(["--duration", "soon"], 1, "invalid duration", id="bad-duration"),
    ],
)
def test_create_command(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    out = tmp_path / "root.kubeconfig"
    data_dir = str(pki.directory.parent)
    assert main(["user", "create", "root", *argv, "--data-dir", data_dir, "--out", str(out)]) == code
    assert message in capsys.readouterr().err
    assert out.exists() == (code == 0)
    assert len(load_registry(pki)) == (1 if code == 0 else 0)
    if code == 0:
        assert out.stat().st_mode & 0o777 == 0o600


def test_create_command_needs_a_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["user", "create", "alice", "--data-dir", str(tmp_path)]) == 1
    assert "no cluster CA" in capsys.readouterr().err


# -- serving certificate reload (a real handshake over memory BIOs) --------------------------------------------


def _server_context(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.serving_cert), str(pki.serving_key))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def _served_serial(server_context: ssl.SSLContext, pki: Pki, server_name: str | None = "localhost") -> int:
    """Handshake a client (trusting the cluster CA) with ``server_context``; the serial it was shown.

    Without ``server_name`` the ClientHello carries no SNI (as for an IP address): the swap must happen anyway.
    """
    client_context = ssl.create_default_context(cafile=str(pki.ca_cert))
    client_context.check_hostname = server_name is not None
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(c_in, c_out, server_hostname=server_name)
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    der = client.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _serial_of(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


async def test_serving_certificate_swaps_for_new_handshakes(pki: Pki) -> None:
    serving = ServingCertificate(lambda: _server_context(pki), (pki.serving_cert, pki.serving_key, pki.ca_cert))
    listening = serving.load()
    first = _serial_of(pki.serving_cert)
    assert _served_serial(listening, pki) == first
    assert not await serving.refresh()
    ensure_pki(pki.directory.parent, ["rotated.skiff.test"])  # a missing SAN: reissued from the same CA
    second = _serial_of(pki.serving_cert)
    assert second != first
    assert await serving.refresh()
    assert serving.context is listening  # the listener keeps its context; handshakes move to the new one
    assert _served_serial(listening, pki) == second
    assert _served_serial(listening, pki, server_name=None) == second


async def test_serving_certificate_keeps_the_old_pair_when_the_new_one_does_not_load(pki: Pki) -> None:
    serving = ServingCertificate(lambda: _server_context(pki), (pki.serving_cert, pki.serving_key))
    listening = serving.load()
    first = _serial_of(pki.serving_cert)
    before = file_stamp([pki.serving_cert])
    other = ec.generate_private_key(ec.SECP256R1())
    pki.serving_key.write_bytes(  # a key that does not match the certificate: half of a rewrite
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    assert file_stamp([pki.serving_cert]) == before
    assert not await serving.refresh()
    assert _served_serial(listening, pki) == first


# -- ServiceAccount signing and verification keys ---------------------------------------------------------------


class _Accounts:
    """An ObjectReader that knows one ServiceAccount, default/robot."""

    account = {"metadata": {"name": "robot", "namespace": "default", "uid": "u-1"}}

    async def get(self, group: str, plural: str, namespace: str, name: str, *, fresh: bool = True) -> Any:
        return self.account if (plural, namespace, name) == ("serviceaccounts", "default", "robot") else None

    async def list(self, group: str, plural: str, namespace: str, *, fresh: bool = True) -> list[Any]:
        return []


def _write_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return key


def _public_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


async def _token(signing: SigningKey) -> str:
    answer = await ServiceAccountTokens(_Accounts(), signing).token_request("default", "robot", {})
    return str(answer["status"]["token"])


async def test_tokens_of_a_rotated_out_key_verify_while_listed(tmp_path: Path) -> None:
    _write_ec_key(tmp_path / "a.key")
    _write_ec_key(tmp_path / "b.key")
    (tmp_path / "a.pub").write_bytes(_public_pem(load_signing_key(tmp_path / "a.key").private))
    old, new = load_signing_key(tmp_path / "a.key"), load_signing_key(tmp_path / "b.key")
    token_a = await _token(old)
    rotated = ServiceAccountTokens(_Accounts(), new, verification_keys=load_verification_keys([tmp_path / "a.pub"]))
    assert (await rotated.authenticate_token(token_a) or UserInfo("")).name == "system:serviceaccount:default:robot"
    token_b = await _token(new)
    assert jwt.get_unverified_header(token_b)["kid"] == new.kid != old.kid
    assert await rotated.authenticate_token(token_b) is not None
    assert [k["kid"] for k in rotated.jwks()["keys"]] == [new.kid, old.kid]
    assert await ServiceAccountTokens(_Accounts(), new).authenticate_token(token_a) is None
    # A token whose kid names no key is still tried against every key (as upstream).
    claims = jwt.decode(token_a, options={"verify_signature": False})
    unnamed = jwt.encode(claims, old.private, algorithm="ES256")
    assert await rotated.authenticate_token(unnamed) is not None


def test_key_file_holds_keys_certificates_and_private_keys(tmp_path: Path, pki: Pki) -> None:
    ec_key = _write_ec_key(tmp_path / "ec.key")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(_public_pem(ec_key) + pki.ca_cert.read_bytes() + rsa_pem)
    keys = load_verification_keys([bundle])
    assert [k.algorithm for k in keys] == ["ES256", "ES256", "RS256"]
    jwk = public_jwk(keys[2])
    assert (jwk["kty"], jwk["alg"], jwk["e"]) == ("RSA", "RS256", "AQAB")
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing here\n")
    with pytest.raises(ValueError, match="no PEM public key"):
        load_verification_keys([empty])


async def test_rsa_signing_key(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rsa.key").write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    signing = load_signing_key(tmp_path / "rsa.key")
    token = await _token(signing)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert await ServiceAccountTokens(_Accounts(), signing).authenticate_token(token) is not None
    assert isinstance(signing.verification, VerificationKey)
