"""Secrets (core/v1): type Opaque by default, stringData folded into data, valid keys, immutability.

pkg/apis/core/validation ValidateSecret / ValidateSecretUpdate: keys as for
ConfigMaps; ``type`` never changes; service-account-token secrets name their
account; dockercfg/dockerconfigjson, basic-auth, ssh-auth and tls secrets
carry their keys.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.core.configmap import MAX_DATA_SIZE, data_size, validate_data_keys, validate_immutable_data
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import ObjectStrategy, immutable

#: Keys a Secret of each type must carry in ``data``.
REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


class SecretStrategy(ObjectStrategy):
    columns = (
        NAME_COLUMN,
        Column("Type", description="Used to facilitate programmatic handling of secret data."),
        Column("Data", description="Data contains the secret data."),
        AGE_COLUMN,
    )
    field_selectors = ("type",)

    def default(self, obj: Obj) -> None:
        if not obj.get("type"):
            obj["type"] = "Opaque"
        # Conversion from v1 folds stringData into data (it is write-only, never stored or returned).
        plain = obj.pop("stringData", None)
        if isinstance(plain, dict) and plain:
            stored = obj.get("data")
            data: Obj = stored if isinstance(stored, dict) else {}
            for key, value in plain.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data

    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes = validate_data_keys(obj.get("data"), "data")
        kind = obj.get("type") or "Opaque"
        data = obj.get("data") or {}
        for key in REQUIRED_KEYS.get(kind, ()):
            if key not in data:
                causes.append(fe.required(f"data[{key}]"))
        if kind == "kubernetes.io/service-account-token":
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if not annotations.get("kubernetes.io/service-account.name"):
                causes.append(fe.required("metadata.annotations[kubernetes.io/service-account.name]"))
        if kind == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
            causes.append(fe.required("data[username]", "one of username or password is required"))
        if data_size(data, encoded=True) > MAX_DATA_SIZE:
            causes.append(fe.too_long("data", MAX_DATA_SIZE))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes: list[Cause] = []
        if (new.get("type") or "Opaque") != (old.get("type") or "Opaque"):
            causes.append(immutable("type", new.get("type")))
        return causes + validate_immutable_data(new, old, ("data",))

    def field_values(self, obj: Obj) -> dict[str, str]:
        return {"type": str(obj.get("type") or "")}

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return [obj.get("type") or "", len(obj.get("data") or {})]
