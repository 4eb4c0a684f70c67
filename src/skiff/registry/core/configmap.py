"""ConfigMaps (core/v1): valid, unique keys, at most 1 MiB of data; ``immutable: true`` freezes data.

pkg/apis/core/validation ValidateConfigMap / ValidateConfigMapUpdate: every
key of ``data`` and ``binaryData`` is a config-map key and appears in only
one of them; once ``immutable`` is true, neither data nor the flag change.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api import name_rules
from skiff.api.status import Cause
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import ObjectStrategy

_KEY_FMT = "[-._a-zA-Z0-9]+"
_KEY_RE = re.compile(_KEY_FMT)
_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"

#: The most a ConfigMap or Secret may hold (core validation MaxSecretSize, 1 MiB).
MAX_DATA_SIZE = 1024 * 1024


class ConfigMapStrategy(ObjectStrategy):
    columns = (NAME_COLUMN, Column("Data", description="Data contains the configuration data."), AGE_COLUMN)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes = validate_data_keys(obj.get("data"), "data")
        causes += validate_data_keys(obj.get("binaryData"), "binaryData")
        both = set(obj.get("data") or {}) & set(obj.get("binaryData") or {})
        causes += [fe.invalid("data", key, "duplicate of key present in binaryData") for key in sorted(both)]
        size = data_size(obj.get("data"), encoded=False) + data_size(obj.get("binaryData"), encoded=True)
        if size > MAX_DATA_SIZE:
            causes.append(fe.too_long("", MAX_DATA_SIZE))  # "" = the whole object, as upstream reports it
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_immutable_data(new, old, ("data", "binaryData"))

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return [len(obj.get("data") or {}) + len(obj.get("binaryData") or {})]


def data_size(data: Any, *, encoded: bool) -> int:
    """Bytes held by a data map; base64 values (binaryData, Secret data) count decoded."""
    if not isinstance(data, dict):
        return 0
    total = 0
    for value in data.values():
        if not isinstance(value, str):
            continue
        total += len(value) * 3 // 4 - value.count("=", -2) if encoded else len(value.encode())
    return total


def validate_data_keys(data: Any, path: str) -> list[Cause]:
    """Each key is a valid config-map key (IsConfigMapKey)."""
    if data is None:
        return []
    if not isinstance(data, dict):
        return [fe.invalid(path, data, "must be an object")]
    causes: list[Cause] = []
    for key in data:
        causes += [fe.invalid(f"{path}[{key}]", key, msg) for msg in is_config_map_key(key)]
    return causes


def validate_immutable_data(new: Obj, old: Obj, fields: tuple[str, ...]) -> list[Cause]:
    """Once ``immutable: true`` is stored, the data fields and the flag itself are frozen."""
    if old.get("immutable") is not True:
        return []
    causes: list[Cause] = []
    if new.get("immutable") is not True:
        causes.append(fe.forbidden("immutable", "field is immutable when `immutable` is set"))
    for name in fields:
        if (new.get(name) or {}) != (old.get(name) or {}):
            causes.append(fe.forbidden(name, "field is immutable when `immutable` is set"))
    return causes


def is_config_map_key(key: str) -> list[str]:
    """IsConfigMapKey: what may name a key of a ConfigMap or Secret (it becomes a file name)."""
    errors: list[str] = []
    if len(key.encode()) > name_rules.DNS1123_SUBDOMAIN_MAX_LENGTH:
        errors.append(name_rules.max_len_error(name_rules.DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _KEY_RE.fullmatch(key):
        errors.append(name_rules.regex_error(_KEY_MSG, _KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if key in (".", ".."):
        errors.append(f"must not be '{key}'")
    elif key.startswith(".."):
        errors.append("must not start with '..'")
    return errors
