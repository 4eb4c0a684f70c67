"""Encryption at rest: the EncryptionConfiguration parser, the providers' on-disk format, the encrypting store."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.secret import SecretBox

from skiff.api.status import ApiError
from skiff.registry.encrypted_store import EncryptedStore, is_stale
from skiff.registry.encryption import (
    EncryptionConfig,
    EncryptionConfigError,
    Transformer,
    TransformError,
    default_config_text,
    load_config,
    parse_config,
)
from skiff.store.sqlite import SqliteStore
from skiff.store.types import Put, Range

KEY1 = bytes(range(32))
KEY2 = bytes(range(32, 64))
CONTEXT = b"/registry/core/secrets/default/s1"
PLAIN = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}'


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def keyed(kind: str, *keys: tuple[str, bytes]) -> dict[str, Any]:
    return {kind: {"keys": [{"name": name, "secret": b64(secret)} for name, secret in keys]}}


def config(*providers: dict[str, Any], resources: tuple[str, ...] = ("secrets",)) -> EncryptionConfig:
    return parse_config(
        {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [{"resources": list(resources), "providers": list(providers)}],
        }
    )


def transformer(*providers: dict[str, Any]) -> Transformer:
    found = config(*providers).transformer_for("", "secrets")
    assert found is not None
    return found


PROVIDERS = [
    pytest.param("aescbc", id="aescbc"),
    pytest.param("aesgcm", id="aesgcm"),
    pytest.param("secretbox", id="secretbox"),
]


@pytest.mark.parametrize("kind", PROVIDERS)
def test_round_trip_with_kubernetes_prefix(kind: str) -> None:
    t = transformer(keyed(kind, ("key1", KEY1)))
    stored = t.to_storage(PLAIN, CONTEXT)
    assert stored.startswith(f"k8s:enc:{kind}:v1:key1:".encode())
    assert PLAIN not in stored
    assert t.from_storage(stored, CONTEXT) == (PLAIN, False)
    assert t.to_storage(PLAIN, CONTEXT) != stored  # a fresh IV/nonce every write


def _open_aescbc(payload: bytes, key: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(payload[:16])).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(decryptor.update(payload[16:]) + decryptor.finalize()) + unpadder.finalize()


@pytest.mark.parametrize(
    ("kind", "open_payload"),
    [
        pytest.param("aescbc", lambda p: _open_aescbc(p, KEY1), id="aescbc-iv16-cbc-pkcs7"),
        pytest.param("aesgcm", lambda p: AESGCM(KEY1).decrypt(p[:12], p[12:], CONTEXT), id="aesgcm-nonce12-key-as-aad"),
        pytest.param("secretbox", lambda p: SecretBox(KEY1).decrypt(p), id="secretbox-nonce24"),
    ],
)
def test_layout_is_kubernetes(kind: str, open_payload: Any) -> None:
    """The bytes after the prefix decrypt with the plain primitive, laid out as kube-apiserver lays them out."""
    stored = transformer(keyed(kind, ("key1", KEY1))).to_storage(PLAIN, CONTEXT)
    payload = stored[len(f"k8s:enc:{kind}:v1:key1:") :]
    assert open_payload(payload) == PLAIN


@pytest.mark.parametrize("kind", PROVIDERS)
def test_wrong_key_is_an_error(kind: str) -> None:
    stored = transformer(keyed(kind, ("key1", KEY1))).to_storage(PLAIN, CONTEXT)
    with pytest.raises(TransformError):
        transformer(keyed(kind, ("key1", KEY2))).from_storage(stored, CONTEXT)


def test_unknown_key_name_is_an_error() -> None:
    stored = transformer(keyed("aescbc", ("old", KEY1))).to_storage(PLAIN, CONTEXT)
    with pytest.raises(TransformError, match="no matching prefix"):
        transformer(keyed("aescbc", ("new", KEY2))).from_storage(stored, CONTEXT)


def test_aesgcm_binds_the_store_key() -> None:
    t = transformer(keyed("aesgcm", ("key1", KEY1)))
    stored = t.to_storage(PLAIN, CONTEXT)
    with pytest.raises(TransformError):
        t.from_storage(stored, b"/registry/core/secrets/default/other")


@pytest.mark.parametrize(
    ("providers", "readable", "stale"),
    [
        pytest.param([keyed("aescbc", ("key1", KEY1)), {"identity": {}}], True, True, id="identity-fallback"),
        pytest.param([{"identity": {}}, keyed("aescbc", ("key1", KEY1))], True, False, id="identity-first"),
        pytest.param([keyed("aescbc", ("key1", KEY1))], False, False, id="no-identity"),
    ],
)
def test_plaintext_reads_only_through_identity(providers: list[dict[str, Any]], readable: bool, stale: bool) -> None:
    t = transformer(*providers)
    if readable:
        assert t.from_storage(PLAIN, CONTEXT) == (PLAIN, stale)
    else:
        with pytest.raises(TransformError, match="no matching prefix"):
            t.from_storage(PLAIN, CONTEXT)


def test_identity_refuses_encrypted_data() -> None:
    with pytest.raises(TransformError, match="identity"):
        transformer({"identity": {}}).from_storage(b"k8s:enc:aescbc:v1:gone:xxxx", CONTEXT)


def test_identity_first_writes_plaintext_and_reads_encrypted_as_stale() -> None:
    old = transformer(keyed("aesgcm", ("key1", KEY1))).to_storage(PLAIN, CONTEXT)
    t = transformer({"identity": {}}, keyed("aesgcm", ("key1", KEY1)))
    assert t.to_storage(PLAIN, CONTEXT) == PLAIN
    assert t.from_storage(old, CONTEXT) == (PLAIN, True)


def test_rotation_second_key_still_decrypts_and_writes_use_the_first() -> None:
    old = transformer(keyed("aescbc", ("key1", KEY1))).to_storage(PLAIN, CONTEXT)
    rotated = transformer(keyed("aescbc", ("key2", KEY2), ("key1", KEY1)))
    assert rotated.from_storage(old, CONTEXT) == (PLAIN, True)
    rewritten = rotated.to_storage(PLAIN, CONTEXT)
    assert rewritten.startswith(b"k8s:enc:aescbc:v1:key2:")
    assert rotated.from_storage(rewritten, CONTEXT) == (PLAIN, False)


def test_rotation_across_provider_types() -> None:
    old = transformer(keyed("aescbc", ("key1", KEY1))).to_storage(PLAIN, CONTEXT)
    rotated = transformer(keyed("secretbox", ("sb", KEY2)), keyed("aescbc", ("key1", KEY1)))
    assert rotated.from_storage(old, CONTEXT) == (PLAIN, True)
    assert rotated.to_storage(PLAIN, CONTEXT).startswith(b"k8s:enc:secretbox:v1:sb:")


@pytest.mark.parametrize(
    ("resources", "group", "plural", "covered"),
    [
        pytest.param(["secrets"], "", "secrets", True, id="core-resource"),
        pytest.param(["secrets"], "", "configmaps", False, id="other-resource"),
        pytest.param(["deployments.apps"], "apps", "deployments", True, id="grouped-resource"),
        pytest.param(["deployments.apps"], "", "deployments", False, id="group-must-match"),
        pytest.param(["*.apps"], "apps", "statefulsets", True, id="group-wildcard"),
        pytest.param(["*.*"], "batch", "jobs", True, id="everything"),
    ],
)
def test_resource_matching(resources: list[str], group: str, plural: str, covered: bool) -> None:
    c = config(keyed("aescbc", ("key1", KEY1)), resources=tuple(resources))
    assert (c.transformer_for(group, plural) is not None) is covered


def test_earlier_entries_win() -> None:
    c = parse_config(
        {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [
                {"resources": ["secrets"], "providers": [keyed("aesgcm", ("g", KEY1))]},
                {"resources": ["*.*"], "providers": [{"identity": {}}]},
            ],
        }
    )
    secrets, configmaps = c.transformer_for("", "secrets"), c.transformer_for("", "configmaps")
    assert secrets is not None and secrets.to_storage(PLAIN, CONTEXT).startswith(b"k8s:enc:aesgcm:v1:g:")
    assert configmaps is not None and configmaps.writes_plaintext


def _doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": [keyed("aescbc", ("k", KEY1))]}],
    }
    doc.update(overrides)
    return doc


def _providers(*providers: Any) -> dict[str, Any]:
    return _doc(resources=[{"resources": ["secrets"], "providers": list(providers)}])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(_doc(kind="Secret"), "kind EncryptionConfiguration", id="wrong-kind"),
        pytest.param(_doc(resources=[]), "at least one entry", id="no-resources"),
        pytest.param(_providers(), "at least one provider", id="no-providers"),
        pytest.param(_providers({"kms": {"name": "x"}}), "kms providers are not supported", id="kms"),
        pytest.param(_providers({"rot13": {}}), "unknown provider", id="unknown-provider"),
        pytest.param(_providers({"aescbc": {"keys": []}}), "at least one key", id="no-keys"),
        pytest.param(_providers(keyed("aescbc", ("k", b"short"))), "is 5 bytes", id="short-aes-key"),
        pytest.param(_providers(keyed("secretbox", ("k", KEY1[:16]))), "secretbox needs 32", id="short-box-key"),
        pytest.param(_providers({"aescbc": {"keys": [{"name": "k", "secret": "%%%"}]}}), "base64", id="bad-base64"),
        pytest.param(_providers(keyed("aescbc", ("k", KEY1), ("k", KEY2))), "used twice", id="duplicate-key-name"),
        pytest.param(_providers(keyed("aescbc", ("a:b", KEY1))), "without ':'", id="colon-in-name"),
        pytest.param(
            _doc(resources=[{"resources": ["secrets", "secrets"], "providers": [{"identity": {}}]}]),
            "listed twice",
            id="duplicate-resource",
        ),
    ],
)
def test_bad_configs_are_refused(document: dict[str, Any], message: str) -> None:
    with pytest.raises(EncryptionConfigError, match=message):
        parse_config(document)


def test_default_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "encryption-config.yaml"
    path.write_text(default_config_text("key1", b64(KEY1)))
    assert yaml.safe_load(path.read_text())["resources"][0]["providers"][1] == {"identity": {}}
    t = load_config(path).transformer_for("", "secrets")
    assert t is not None and t.to_storage(PLAIN, CONTEXT).startswith(b"k8s:enc:aescbc:v1:key1:")
    assert t.from_storage(PLAIN, CONTEXT) == (PLAIN, True)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(EncryptionConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("kind: [")
    with pytest.raises(EncryptionConfigError, match="not YAML"):
        load_config(tmp_path / "bad.yaml")


# -- the encrypting store over a real SQLite store ------------------------------------------------------


def test_encrypted_store_writes_ciphertext_and_serves_plaintext(tmp_path: Path) -> None:
    async def scenario() -> None:
        raw = await SqliteStore.open(tmp_path / "db")
        try:
            old = EncryptedStore(raw, transformer(keyed("aescbc", ("key1", KEY1))))
            key = CONTEXT
            await old.create(key, PLAIN)
            assert (await raw.get(key)).value.startswith(b"k8s:enc:aescbc:v1:key1:")  # type: ignore[union-attr]
            kv = await old.get(key)
            assert kv is not None and kv.value == PLAIN and not is_stale(old, kv)
            watcher = await old.watch(b"/registry/", b"/registry0", start_revision=1)
            async with asyncio.timeout(5):
                first = await watcher.__anext__()
            await watcher.close()
            assert first.events[0].kv.value == PLAIN
            assert (await old.range(Range(key))).kvs[0].value == PLAIN
            await old.put(Put(b"/registry/core/secrets/default/s2", PLAIN))
            assert PLAIN not in (await raw.get(b"/registry/core/secrets/default/s2")).value  # type: ignore[union-attr]

            rotated = EncryptedStore(raw, transformer(keyed("aescbc", ("key2", KEY2), ("key1", KEY1))))
            kv = await rotated.get(key)
            assert kv is not None and kv.value == PLAIN and is_stale(rotated, kv)
            await rotated.update(key, kv.value, kv.mod_revision)
            fresh = await rotated.get(key)
            assert fresh is not None and not is_stale(rotated, fresh)
            assert (await raw.get(key)).value.startswith(b"k8s:enc:aescbc:v1:key2:")  # type: ignore[union-attr]

            lost = EncryptedStore(raw, transformer(keyed("aescbc", ("key3", KEY1))))
            with pytest.raises(ApiError) as caught:
                await lost.get(key)
            assert caught.value.code == 500 and "no matching prefix found" in str(caught.value.message)
            assert (await lost.range(Range(key))).kvs == ()  # left out, not a crash
        finally:
            await raw.close()

    asyncio.run(scenario())
