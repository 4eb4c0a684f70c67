"""OpenAPI v3 schemas of the built-in kinds, derived from the official Python client's models.

The ``kubernetes`` package generates one model class per upstream OpenAPI
definition (``V1Pod`` from ``io.k8s.api.core.v1.Pod``); each class lists its
fields (``openapi_types``: attribute → type string such as ``V1PodSpec``,
``List[V1Container]``, ``Dict[str, str]``, ``datetime``, ``object``;
``attribute_map``: attribute → JSON name) and carries the descriptions.  This
module turns them back into upstream-shaped component schemas:

* names as upstream: ``io.k8s.api.<group>.<version>.<Type>`` for API types,
  ``io.k8s.apimachinery.pkg.apis.meta.v1.<Type>`` for the shared meta types,
  ``io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.<Type>`` for CRDs.
  A model's group is its kind's group (the resource table says it); nested
  types take the group of the first kind (in table order, core first) that
  reaches them, except the meta types listed in ``META_TYPES`` and models whose
  Python name already carries the group (``CoreV1Event``, ``RbacV1Subject``);
* properties ``$ref`` the components; lists are ``type: array``, maps are
  ``type: object`` with ``additionalProperties``;
* upstream's special types: ``Time``/``MicroTime`` (string, date-time),
  ``IntOrString`` (``x-kubernetes-int-or-string``), ``Quantity``, and the
  free-form ``RawExtension``/``FieldsV1``/``JSON`` (``type: object`` with
  ``x-kubernetes-preserve-unknown-fields``: anything goes inside);
* top-level kinds and their lists carry ``x-kubernetes-group-version-kind``.

The Python models know neither int32/int64 formats nor which ``object`` fields
are IntOrString in older client versions, nor which strings are Quantities or
MicroTimes: the small tables below say so, as upstream's Go types do.

Everything here is pure and deterministic; ``builtin_schemas()`` is computed
once per process (a few hundred models, well under a second).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skiff.registry.resource import ResourceInfo

Schema = dict[str, Any]

REF_PREFIX = "#/components/schemas/"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
TIME = f"{META}.Time"
MICRO_TIME = f"{META}.MicroTime"
FIELDS_V1 = f"{META}.FieldsV1"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"
JSON_VALUE = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON"

#: Types of k8s.io/apimachinery meta/v1 (their Python names are ``V1<Type>``).
META_TYPES = frozenset(
    {
        "ObjectMeta",
        "ListMeta",
        "LabelSelector",
        "LabelSelectorRequirement",
        "OwnerReference",
        "ManagedFieldsEntry",
        "Condition",
        "Status",
        "StatusDetails",
        "StatusCause",
        "DeleteOptions",
        "Preconditions",
        "APIResource",
        "APIResourceList",
        "APIGroup",
        "APIGroupList",
        "APIVersions",
        "GroupVersionForDiscovery",
        "ServerAddressByClientCIDR",
        "WatchEvent",
        "FieldSelectorRequirement",
    }
)

#: Fields typed ``object`` or ``int`` in the models that are IntOrString upstream (model type, JSON name).
INT_OR_STRING_FIELDS = frozenset(
    {
        ("ServicePort", "targetPort"),
        ("HTTPGetAction", "port"),
        ("TCPSocketAction", "port"),
        ("RollingUpdateDeployment", "maxSurge"),
        ("RollingUpdateDeployment", "maxUnavailable"),
        ("RollingUpdateDaemonSet", "maxSurge"),
        ("RollingUpdateDaemonSet", "maxUnavailable"),
        ("RollingUpdateStatefulSetStrategy", "maxUnavailable"),
        ("PodDisruptionBudgetSpec", "minAvailable"),
        ("PodDisruptionBudgetSpec", "maxUnavailable"),
        ("NetworkPolicyPort", "port"),
        ("IngressServiceBackend", "port"),
    }
)

#: Fields holding a resource.Quantity, scalar or map values (model type, JSON name).
QUANTITY_FIELDS = frozenset(
    {
        ("ResourceRequirements", "limits"),
        ("ResourceRequirements", "requests"),
        ("VolumeResourceRequirements", "limits"),
        ("VolumeResourceRequirements", "requests"),
        ("ResourceQuotaSpec", "hard"),
        ("ResourceQuotaStatus", "hard"),
        ("ResourceQuotaStatus", "used"),
        ("LimitRangeItem", "max"),
        ("LimitRangeItem", "min"),
        ("LimitRangeItem", "default"),
        ("LimitRangeItem", "defaultRequest"),
        ("LimitRangeItem", "maxLimitRequestRatio"),
        ("NodeStatus", "capacity"),
        ("NodeStatus", "allocatable"),
        ("PersistentVolumeSpec", "capacity"),
        ("PersistentVolumeClaimStatus", "capacity"),
        ("PersistentVolumeClaimStatus", "allocatedResources"),
        ("ContainerStatus", "allocatedResources"),
        ("PodSpec", "overhead"),
        ("ResourceFieldSelector", "divisor"),
        ("EmptyDirVolumeSource", "sizeLimit"),
    }
)

#: ``datetime`` fields that are metav1.MicroTime rather than metav1.Time.
MICRO_TIME_FIELDS = frozenset(
    {
        ("Event", "eventTime"),
        ("EventSeries", "lastObservedTime"),
        ("LeaseSpec", "acquireTime"),
        ("LeaseSpec", "renewTime"),
    }
)

#: Free-form ``object`` fields with an upstream name of their own; other ``object`` fields are RawExtension.
FREE_FORM_FIELDS = {("ManagedFieldsEntry", "fieldsV1"): FIELDS_V1}

#: The Go package of a group, where it is not ``io.k8s.api.<first label of the group>``.
_GROUP_PACKAGES = {
    "": "io.k8s.api.core",
    "apiextensions.k8s.io": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions",
    "apiregistration.k8s.io": "io.k8s.kube-aggregator.pkg.apis.apiregistration",
}

#: Group-prefixed model names (``ApiextensionsV1ServiceReference``) whose package is not ``io.k8s.api.<word>``.
_WORD_PACKAGES = {p.rsplit(".", 1)[-1]: p for p in _GROUP_PACKAGES.values() if not p.startswith("io.k8s.api.")}

_SPECIAL: dict[str, Schema] = {
    TIME: {
        "description": "Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON. "
        "Wrappers are provided for many of the factory methods that the time package offers.",
        "type": "string",
        "format": "date-time",
    },
    MICRO_TIME: {
        "description": "MicroTime is version of Time with microsecond level precision.",
        "type": "string",
        "format": "date-time",
    },
    INT_OR_STRING: {
        "description": "IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML "
        "marshalling and unmarshalling, it produces or consumes the inner type.  This allows you to have, "
        "for example, a JSON field that can accept a name or number.",
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
    },
    QUANTITY: {
        "description": "Quantity is a fixed-point representation of a number. It provides convenient "
        "marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() accessors.",
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
    RAW_EXTENSION: {
        "description": "RawExtension is used to hold extensions in external versions.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    },
    FIELDS_V1: {
        "description": "FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    },
    JSON_VALUE: {
        "description": "JSON represents any valid JSON value. These types are supported: bool, int64, "
        "float64, string, []interface{}, map[string]interface{} and nil.",
        "x-kubernetes-preserve-unknown-fields": True,
    },
}

_CONVENTIONS = "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
_OBJECT_METADATA = f"Standard object's metadata. More info: {_CONVENTIONS}#metadata"
_LIST_METADATA = f"Standard list metadata. More info: {_CONVENTIONS}#metadata"

_MODEL_NAME = re.compile(r"^(?P<prefix>[A-Z][a-z]+)?(?P<version>V\d+(?:alpha\d+|beta\d+)?)(?P<type>[A-Z]\w*)$")
_LIST = re.compile(r"^[Ll]ist\[(?P<item>.+)\]$")
_DICT = re.compile(r"^(?:Dict\[str, ?(?P<a>.+)\]|dict\(str, ?(?P<b>.+)\))$")
_PRIMITIVES: dict[str, Schema] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "bool": {"type": "boolean"},
    "float": {"type": "number", "format": "double"},
    "bytes": {"type": "string", "format": "byte"},
}


def ref(name: str) -> Schema:
    return {"$ref": REF_PREFIX + name}


def ref_name(schema: Mapping[str, Any]) -> str | None:
    """The component a schema points at (``$ref`` directly or through a one-element ``allOf``)."""
    target = schema.get("$ref")
    if target is None and isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
        target = schema["allOf"][0].get("$ref")
    if isinstance(target, str) and target.startswith(REF_PREFIX):
        return target[len(REF_PREFIX) :]
    return None


def group_package(group: str) -> str:
    return _GROUP_PACKAGES.get(group, f"io.k8s.api.{group.split('.')[0]}")


def _model_class(name: str) -> type | None:
    models = importlib.import_module("kubernetes.client.models")
    cls = getattr(models, name, None)
    return cls if isinstance(cls, type) and hasattr(cls, "openapi_types") else None


def model_name(group: str, version: str, kind: str) -> str | None:
    """The Python model of a kind: ``V1Pod``, or ``CoreV1Event`` where the short name is shared."""
    short = f"{version[0].upper()}{version[1:]}{kind}"
    prefix = group_package(group).rsplit(".", 1)[-1].capitalize() + short
    for candidate in (short, prefix):
        if _model_class(candidate) is not None:
            return candidate
    return None


def _description(cls: type) -> str:
    doc = inspect.cleandoc(cls.__doc__ or "")
    return doc.split("\n\n    Attributes:")[0].split("\nAttributes:")[0].strip()


def _model_field(cls: type, attr: str) -> Any:
    """The pydantic field of an attribute (``_exec`` is ``var_exec`` there), or None for older models."""
    fields = getattr(cls, "model_fields", None)
    if not isinstance(fields, Mapping):
        return None
    return fields.get(attr) or fields.get("var_" + attr.lstrip("_"))


def _field_description(cls: type, attr: str) -> str:
    model_field = _model_field(cls, attr)
    if model_field is not None:
        return str(model_field.description or "")
    prop = getattr(cls, attr, None)
    doc = inspect.getdoc(prop) if isinstance(prop, property) else None
    if not doc:
        return ""
    # Older (non-pydantic) models: "Gets the x of this V1Pod. <noqa>\n\n<description> <noqa>\n\n:return: ...".
    parts = [p.replace("# noqa: E501", "").strip() for p in doc.split("\n\n")]
    text = [p for p in parts[1:] if p and not p.startswith(":")]
    return " ".join(text[0].split()) if text else ""


def _annotation_is_int_or_string(cls: type, attr: str) -> bool:
    model_field = _model_field(cls, attr)
    if model_field is None:
        return False
    text = str(model_field.annotation)
    return "int" in text and "str" in text and "Dict" not in text and "List" not in text


@dataclass
class _Builder:
    """Converts models to component schemas, assigning each model its upstream name as it goes."""

    names: dict[str, str]
    schemas: dict[str, Schema]

    def name_of(self, model: str, group: str) -> str:
        """The upstream definition name of a model reached from a kind of ``group``."""
        if model in self.names:
            return self.names[model]
        match = _MODEL_NAME.match(model)
        if match is None:
            raise ValueError(f"not a Kubernetes model name: {model}")
        version, type_name, prefix = match["version"].lower(), match["type"], match["prefix"]
        if prefix:
            word = prefix.lower()
            package = _WORD_PACKAGES.get(word, f"io.k8s.api.{word}")
        elif type_name in META_TYPES and version == "v1":
            package = "io.k8s.apimachinery.pkg.apis.meta"
        else:
            package = group_package(group)
        name = f"{package}.{version}.{type_name}"
        self.names[model] = name
        return name

    def add_model(self, model: str, group: str) -> str:
        name = self.name_of(model, group)
        if name in self.schemas:
            return name
        cls = _model_class(model)
        if cls is None:
            raise ValueError(f"kubernetes.client.models has no {model}")
        schema: Schema = {"description": _description(cls), "type": "object", "properties": {}}
        self.schemas[name] = schema  # before recursing: types refer to themselves (JSONSchemaProps)
        type_name = name.rsplit(".", 1)[-1]
        attribute_map: Mapping[str, str] = cls.attribute_map  # type: ignore[attr-defined]
        required: list[str] = []
        for attr, type_text in cls.openapi_types.items():  # type: ignore[attr-defined]
            json_name = attribute_map[attr]
            prop = self.property_schema(cls, attr, (type_name, json_name), type_text, group)
            description = _field_description(cls, attr) or self.missing_description(json_name, prop)
            if description:
                prop = {**prop, "description": description}
            schema["properties"][json_name] = prop
            model_field = _model_field(cls, attr)
            if model_field is not None and model_field.is_required():
                required.append(json_name)
        if required:
            schema["required"] = required
        if not schema["description"]:
            del schema["description"]
        return name

    def missing_description(self, json_name: str, prop: Schema) -> str:
        """The client models drop the descriptions of ``$ref`` fields: use upstream's for metadata, else the type's."""
        target = ref_name(prop)
        if target is None:
            return ""
        if json_name == "metadata":
            return _LIST_METADATA if target.endswith(".ListMeta") else _OBJECT_METADATA
        return str(self.schemas.get(target, {}).get("description", ""))

    def property_schema(self, cls: type, attr: str, key: tuple[str, str], type_text: str, group: str) -> Schema:
        if key in QUANTITY_FIELDS:
            return self._quantity(type_text)
        if key in INT_OR_STRING_FIELDS or (type_text == "object" and _annotation_is_int_or_string(cls, attr)):
            return self.special(INT_OR_STRING)
        if type_text == "object":
            return self.special(FREE_FORM_FIELDS.get(key, JSON_VALUE if "JSONSchemaProps" in key[0] else RAW_EXTENSION))
        if type_text == "datetime":
            return self.special(MICRO_TIME if key in MICRO_TIME_FIELDS else TIME)
        return self.type_schema(type_text, group, key)

    def type_schema(self, type_text: str, group: str, key: tuple[str, str]) -> Schema:
        if type_text in _PRIMITIVES:
            return dict(_PRIMITIVES[type_text])
        if type_text == "datetime":
            return self.special(TIME)
        if type_text == "object":
            return self.special(JSON_VALUE if "JSONSchemaProps" in key[0] else RAW_EXTENSION)
        if (m := _LIST.match(type_text)) is not None:
            return {"type": "array", "items": self.type_schema(m["item"], group, key)}
        if (m := _DICT.match(type_text)) is not None:
            return {"type": "object", "additionalProperties": self.type_schema(m["a"] or m["b"], group, key)}
        return ref(self.add_model(type_text, group))

    def _quantity(self, type_text: str) -> Schema:
        if _DICT.match(type_text):
            return {"type": "object", "additionalProperties": self.special(QUANTITY)}
        return self.special(QUANTITY)

    def special(self, name: str) -> Schema:
        self.schemas.setdefault(name, dict(_SPECIAL[name]))
        return ref(name)


@dataclass(frozen=True)
class KindSchemas:
    """Component schemas plus, per (group, version, kind), the component name of that kind."""

    components: Mapping[str, Schema]
    kinds: Mapping[tuple[str, str, str], str]

    def for_kind(self, group: str, version: str, kind: str) -> str | None:
        return self.kinds.get((group, version, kind))

    def closure(self, roots: Iterable[str]) -> dict[str, Schema]:
        """The components reachable from ``roots``, sorted by name (what one GV document holds)."""
        seen: dict[str, Schema] = {}
        todo = [r for r in roots if r in self.components]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen[name] = self.components[name]
            todo.extend(n for n in _refs(seen[name]) if n not in seen and n in self.components)
        return dict(sorted(seen.items()))


def _refs(schema: Any) -> Iterable[str]:
    if isinstance(schema, Mapping):
        target = schema.get("$ref")
        if isinstance(target, str) and target.startswith(REF_PREFIX):
            yield target[len(REF_PREFIX) :]
        for value in schema.values():
            if isinstance(value, (Mapping, list)):
                yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


#: Kinds used by subresources and lists of every GV: (group, version, kind).
EXTRA_KINDS: tuple[tuple[str, str, str], ...] = (
    ("autoscaling", "v1", "Scale"),
    ("", "v1", "Binding"),
    ("policy", "v1", "Eviction"),
    ("authentication.k8s.io", "v1", "TokenRequest"),
)


def build_schemas(infos: Sequence[ResourceInfo]) -> KindSchemas:
    """Schemas for the kinds of ``infos`` (and their lists), core group first so shared types land there."""
    builder = _Builder({}, {})
    kinds: dict[tuple[str, str, str], str] = {}
    targets = [(i.group, i.version, i.kind) for i in infos]
    targets += [(g, v, k) for (g, v, k) in EXTRA_KINDS]
    targets.sort(key=lambda t: t[0] != "")
    for group, version, kind in targets:
        for name_kind in (kind, kind + "List"):
            model = model_name(group, version, name_kind)
            if model is None or (group, version, name_kind) in kinds:
                continue
            name = builder.add_model(model, group)
            kinds[(group, version, name_kind)] = name
            gvk = {"group": group, "kind": name_kind, "version": version}
            builder.schemas[name]["x-kubernetes-group-version-kind"] = [gvk]
    for name in (f"{META}.Status", f"{META}.DeleteOptions"):
        builder.add_model("V1" + name.rsplit(".", 1)[-1], "")
    builder.schemas[f"{META}.Patch"] = {
        "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
        "type": "object",
    }
    return KindSchemas(builder.schemas, kinds)


@functools.cache
def builtin_schemas() -> KindSchemas:
    """The schemas of skiff's built-in resource table (computed once)."""
    from skiff.registry.builtin import BUILTIN

    return build_schemas(BUILTIN)
