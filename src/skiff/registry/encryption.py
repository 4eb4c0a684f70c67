"""Encryption at rest: kube-apiserver's ``--encryption-provider-config``.

The file is an ``apiserver.config.k8s.io/v1`` ``EncryptionConfiguration``::

    resources:
    - resources: [secrets]            # plural[.group]; "*.*" every resource, "*.apps" a group
      providers:                      # in order: the first writes, every one reads
      - aescbc: {keys: [{name: key1, secret: <base64 of 32 bytes>}]}
      - aesgcm: {keys: [...]}
      - secretbox: {keys: [...]}
      - identity: {}

Stored values use Kubernetes' on-disk format, so a value written by one reads
in the other (k8s.io/apiserver pkg/storage/value/encrypt):

* ``k8s:enc:aescbc:v1:<key>:`` + 16-byte IV + AES-CBC ciphertext (PKCS#7);
* ``k8s:enc:aesgcm:v1:<key>:`` + 12-byte nonce + ciphertext || tag, with the
  store key as additional authenticated data (upstream's ``DefaultContext``);
* ``k8s:enc:secretbox:v1:<key>:`` + 24-byte nonce + tag || ciphertext (XSalsa20-Poly1305);
* identity: the value as is (JSON here).

Writes use the first provider (its first key).  Reads pick the provider by
prefix; an unprefixed value reads only when ``identity`` is listed.  A value
read through anything but the first provider is *stale*: an update rewrites it
even when the object is unchanged (upstream GuaranteedUpdate), which is how
keys rotate.  ``kms`` providers are refused: there is no plugin socket here.

Pure: no I/O but ``load_config`` reading the file; no clock.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

API_VERSIONS = ("apiserver.config.k8s.io/v1", "apiserver.config.k8s.io/v1beta1")
KIND = "EncryptionConfiguration"
#: Every encrypted value starts with this (upstream's identity transformer refuses to read such data).
ENCRYPTED_PREFIX = b"k8s:enc:"
AES_KEY_SIZES = (16, 24, 32)


class EncryptionConfigError(ValueError):
    """The configuration file is not a usable EncryptionConfiguration."""


class TransformError(Exception):
    """A stored value could not be decrypted (wrong or missing key, corrupt data)."""


class Provider(Protocol):
    #: The bytes every value it writes starts with (b"" for identity).
    prefix: bytes

    def seal(self, data: bytes, context: bytes) -> bytes:
        """``data`` encrypted, without the prefix."""

    def open(self, payload: bytes, context: bytes) -> bytes:
        """The plaintext of ``payload`` (the value after the prefix); raises TransformError."""


class Identity:
    prefix = b""

    def seal(self, data: bytes, context: bytes) -> bytes:
        return data

    def open(self, payload: bytes, context: bytes) -> bytes:
        if payload.startswith(ENCRYPTED_PREFIX):
            raise TransformError("identity transformer tried to read encrypted data")
        return payload


class AesCbc:
    def __init__(self, name: str, secret: bytes) -> None:
        self.prefix = f"k8s:enc:aescbc:v1:{name}:".encode()
        self._key = secret

    def seal(self, data: bytes, context: bytes) -> bytes:
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(data) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(iv)).encryptor()
        return iv + encryptor.update(padded) + encryptor.finalize()

    def open(self, payload: bytes, context: bytes) -> bytes:
        if len(payload) < 32 or len(payload) % 16:
            raise TransformError("the stored data is not a whole number of AES blocks")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(payload[:16])).decryptor()
        padded = decryptor.update(payload[16:]) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise TransformError("invalid PKCS7 data (empty or not padded)") from None


class AesGcm:
    def __init__(self, name: str, secret: bytes) -> None:
        self.prefix = f"k8s:enc:aesgcm:v1:{name}:".encode()
        self._aead = AESGCM(secret)

    def seal(self, data: bytes, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data, context)

    def open(self, payload: bytes, context: bytes) -> bytes:
        if len(payload) < 12 + 16:
            raise TransformError("the stored data was shorter than the required size")
        try:
            return self._aead.decrypt(payload[:12], payload[12:], context)
        except InvalidTag:
            raise TransformError("cipher: message authentication failed") from None


class Secretbox:
    def __init__(self, name: str, secret: bytes) -> None:
        self.prefix = f"k8s:enc:secretbox:v1:{name}:".encode()
        self._box = SecretBox(secret)

    def seal(self, data: bytes, context: bytes) -> bytes:
        return bytes(self._box.encrypt(data))  # nonce || tag || ciphertext, as Go's secretbox.Seal after the nonce

    def open(self, payload: bytes, context: bytes) -> bytes:
        if len(payload) < SecretBox.NONCE_SIZE + SecretBox.MACBYTES:
            raise TransformError("the stored data was shorter than the required size")
        try:
            return self._box.decrypt(payload)
        except CryptoError:
            raise TransformError("secretbox: message authentication failed") from None


@dataclass(frozen=True)
class Transformer:
    """One resource's providers, in the configuration's order."""

    providers: tuple[Provider, ...]

    @property
    def writes_plaintext(self) -> bool:
        return isinstance(self.providers[0], Identity)

    def to_storage(self, data: bytes, context: bytes) -> bytes:
        first = self.providers[0]
        return first.prefix + first.seal(data, context)

    def from_storage(self, value: bytes, context: bytes) -> tuple[bytes, bool]:
        """``(plaintext, stale)``: stale when a provider other than the first read it."""
        identity: Provider | None = None
        for index, provider in enumerate(self.providers):
            if not provider.prefix:
                identity = identity or provider
                continue
            if value.startswith(provider.prefix):
                return provider.open(value[len(provider.prefix) :], context), index > 0
        if identity is None:
            raise TransformError("no matching prefix found")
        return identity.open(value, context), identity is not self.providers[0]


@dataclass(frozen=True)
class ResourceRule:
    group: str  # "*" matches every group
    plural: str  # "*" matches every resource of the group
    transformer: Transformer

    def matches(self, group: str, plural: str) -> bool:
        return self.group in ("*", group) and self.plural in ("*", plural)


@dataclass(frozen=True)
class EncryptionConfig:
    rules: tuple[ResourceRule, ...]

    def transformer_for(self, group: str, plural: str) -> Transformer | None:
        """The first matching rule's transformer (upstream: earlier entries win); None stores plaintext."""
        for rule in self.rules:
            if rule.matches(group, plural):
                return rule.transformer
        return None


def load_config(path: Path) -> EncryptionConfig:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as err:
        raise EncryptionConfigError(f"cannot read encryption provider config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise EncryptionConfigError(f"encryption provider config {path} is not YAML: {err}") from None
    try:
        return parse_config(document)
    except EncryptionConfigError as err:
        raise EncryptionConfigError(f"encryption provider config {path}: {err}") from None


def parse_config(document: Any) -> EncryptionConfig:
    if not isinstance(document, dict):
        raise EncryptionConfigError("must be a mapping")
    if document.get("kind") != KIND or document.get("apiVersion") not in API_VERSIONS:
        raise EncryptionConfigError(f"must be kind {KIND}, apiVersion {API_VERSIONS[0]}")
    entries = document.get("resources")
    if not isinstance(entries, list) or not entries:
        raise EncryptionConfigError("resources: at least one entry is required")
    rules: list[ResourceRule] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"resources[{i}]"
        if not isinstance(entry, dict):
            raise EncryptionConfigError(f"{where}: must be a mapping")
        transformer = Transformer(_providers(entry.get("providers"), f"{where}.providers"))
        names = entry.get("resources")
        if not isinstance(names, list) or not names:
            raise EncryptionConfigError(f"{where}.resources: at least one resource is required")
        for name in names:
            if not isinstance(name, str) or not name or name != name.lower():
                raise EncryptionConfigError(f"{where}.resources: {name!r} is not a lowercase resource name")
            if name in seen:
                raise EncryptionConfigError(f"{where}.resources: {name!r} is listed twice")
            seen.add(name)
            plural, _, group = name.partition(".")
            rules.append(ResourceRule(group or "", plural, transformer))
    return EncryptionConfig(tuple(rules))


def _providers(raw: Any, where: str) -> tuple[Provider, ...]:
    if not isinstance(raw, list) or not raw:
        raise EncryptionConfigError(f"{where}: at least one provider is required")
    out: list[Provider] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or len(item) != 1:
            raise EncryptionConfigError(f"{where}[{i}]: exactly one provider type per entry")
        (kind, body), here = next(iter(item.items())), f"{where}[{i}]"
        if kind == "identity":
            out.append(Identity())
        elif kind in ("aescbc", "aesgcm", "secretbox"):
            out.extend(_keyed(kind, body, f"{here}.{kind}"))
        elif kind == "kms":
            raise EncryptionConfigError(f"{here}: kms providers are not supported (no KMS plugin)")
        else:
            raise EncryptionConfigError(f"{here}: unknown provider {kind!r}")
    return tuple(out)


def _keyed(kind: str, body: Any, where: str) -> list[Provider]:
    keys = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys, list) or not keys:
        raise EncryptionConfigError(f"{where}.keys: at least one key is required")
    out: list[Provider] = []
    names: set[str] = set()
    for j, key in enumerate(keys):
        here = f"{where}.keys[{j}]"
        name = key.get("name") if isinstance(key, dict) else None
        if not isinstance(name, str) or not name or ":" in name:
            raise EncryptionConfigError(f"{here}.name: required, without ':'")
        if name in names:
            raise EncryptionConfigError(f"{here}.name: {name!r} is used twice")
        names.add(name)
        secret = _secret(key.get("secret"), f"{here}.secret")
        sizes = (32,) if kind == "secretbox" else AES_KEY_SIZES
        if len(secret) not in sizes:
            raise EncryptionConfigError(
                f"{here}.secret: is {len(secret)} bytes; {kind} needs {' or '.join(map(str, sizes))}"
            )
        out.append(_KEYED[kind](name, secret))
    return out


def _secret(raw: Any, where: str) -> bytes:
    if not isinstance(raw, str) or not raw:
        raise EncryptionConfigError(f"{where}: a base64-encoded key is required")
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise EncryptionConfigError(f"{where}: not valid base64") from None


_KEYED: dict[str, type[AesCbc] | type[AesGcm] | type[Secretbox]] = {
    "aescbc": AesCbc,
    "aesgcm": AesGcm,
    "secretbox": Secretbox,
}


def new_key() -> str:
    """A fresh 32-byte key, base64-encoded as the file holds it."""
    return base64.b64encode(os.urandom(32)).decode()


def default_config_text(key_name: str, secret: str, resources: Sequence[str] = ("secrets",)) -> str:
    """What ``skiff up`` writes on first start: aescbc with one fresh key, identity to read older data."""
    document = {
        "apiVersion": API_VERSIONS[0],
        "kind": KIND,
        "resources": [
            {
                "resources": list(resources),
                "providers": [{"aescbc": {"keys": [{"name": key_name, "secret": secret}]}}, {"identity": {}}],
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)
