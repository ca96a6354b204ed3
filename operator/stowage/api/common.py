"""Building blocks shared by every stowage API model.

The models are the single source of truth for the CRDs: field descriptions become the
``kubectl explain`` text, ``json_schema_extra`` carries the Kubernetes extensions
(CEL rules, list types) that ``stowage.api.schema`` turns into the structural schema.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

GROUP = "stowage.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class ResourceNames:
    """How one custom resource is addressed in the API (the CRD ``names`` block)."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    categories: tuple[str, ...] = ("stowage",)

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=False,
    )

    def to_manifest(self) -> dict[str, Any]:
        """The object as it is written to the API (camelCase, unset optionals dropped)."""
        dumped: dict[str, Any] = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        return dumped


VALIDATIONS_KEY = "x-kubernetes-validations"


def cel(rule: str, message: str) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry."""
    return {"rule": rule, "message": message}


def validations(*rules: dict[str, str]) -> Callable[[JsonDict], None]:
    """``json_schema_extra`` adding CEL rules to those the field's type already carries."""

    def add_rules(schema: JsonDict) -> None:
        existing = schema.setdefault(VALIDATIONS_KEY, [])
        assert isinstance(existing, list)
        existing.extend(cast(JsonDict, rule) for rule in rules if rule not in existing)

    return add_rules


@dataclass(frozen=True)
class CelRules:
    """Annotation carrying CEL rules of a type (``Annotated[str, CelRules(...)]``)."""

    rules: tuple[dict[str, str], ...]

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        validations(*self.rules)(schema)
        return schema


def immutable(field_path: str) -> Callable[[JsonDict], None]:
    """A transition rule that refuses any change of the field once it is set."""
    return validations(cel("self == oldSelf", f"{field_path} is immutable"))


SET_LIST: dict[str, Any] = {"x-kubernetes-list-type": "set"}
# An object whose fields all have defaults: the API server fills them in when it is left out.
OBJECT_DEFAULT: dict[str, Any] = {"default": {}}


def map_list(*keys: str) -> dict[str, Any]:
    """``json_schema_extra`` of a list of objects identified by the given keys."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


# --- names ------------------------------------------------------------------

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

DnsLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
DnsSubdomain = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]

# A host of a storage server: an IP address (v4 or v6) or a DNS name.
HOST_RULE = cel(
    "isIP(self) || self.matches('" + DNS_SUBDOMAIN_PATTERN.replace("\\", "\\\\") + "')",
    "must be an IP address or a DNS name",
)
Host = Annotated[
    str,
    Field(min_length=1, max_length=253),
    CelRules((HOST_RULE,)),
]

# A server with an optional port: host, host:port, [IPv6] or [IPv6]:port.
SERVER_ADDRESS_PATTERN = (
    r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$"
)
ServerAddress = Annotated[
    str,
    Field(min_length=1, max_length=262, pattern=SERVER_ADDRESS_PATTERN),
]

# An absolute path without `..` segments; paths become host paths or server paths.
ABSOLUTE_PATH_RULE = cel(
    "self.startsWith('/') && !self.contains('/../') && !self.endsWith('/..')",
    "must be an absolute path without '..' segments",
)
AbsolutePath = Annotated[
    str,
    Field(min_length=1, max_length=1024),
    CelRules((ABSOLUTE_PATH_RULE,)),
]


class SecretReference(ApiModel):
    """A Secret in a named namespace (cluster-scoped resources have no namespace of their own)."""

    name: DnsSubdomain = Field(description="Name of the Secret.")
    namespace: DnsLabel = Field(description="Namespace of the Secret.")


class LocalSecretReference(ApiModel):
    """A Secret in the namespace of the referring object."""

    name: DnsSubdomain = Field(description="Name of the Secret in the same namespace.")


# --- conditions -------------------------------------------------------------


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """The standard Kubernetes condition (metav1.Condition)."""

    type: str = Field(
        max_length=316,
        description="Type of the condition in CamelCase, e.g. Ready.",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str = Field(
        default="",
        max_length=1024,
        description="Machine-readable reason for the last transition, in CamelCase.",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="Human-readable detail of the last transition.",
    )
    last_transition_time: str | None = Field(
        default=None,
        description="When the condition last changed status (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The .metadata.generation the condition was set from.",
    )


PRESERVE_UNKNOWN: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}


class ResourceStatus(ApiModel):
    """What the status of every stowage resource has: conditions and the operator's books."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=32,
        description="Conditions of the resource; Ready tells whether it can be used.",
        json_schema_extra=map_list("type"),
    )
    kopf: dict[str, Any] | None = Field(
        default=None,
        description="Bookkeeping of the operator framework (kopf).",
        json_schema_extra=PRESERVE_UNKNOWN,
    )


# --- quantities -------------------------------------------------------------

_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY_RE = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)


def parse_quantity(value: str | int) -> int:
    """A Kubernetes quantity (``"1.5Gi"``, ``"500M"``, ``"1e3"``, ``1024``) in whole units.

    Fractions are rounded up, as ``resource.Quantity.Value()`` does. Raises ValueError for
    anything the Kubernetes quantity grammar does not accept.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int):
        return value
    match = _QUANTITY_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None or value != value.strip():
        raise ValueError(f"not a quantity: {value!r}")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as error:
        raise ValueError(f"not a quantity: {value!r}") from error
    suffix = match["suffix"] or ""
    if suffix in _BINARY_SUFFIXES:
        scaled = number * _BINARY_SUFFIXES[suffix]
    elif suffix in _DECIMAL_SUFFIXES:
        scaled = number * _DECIMAL_SUFFIXES[suffix]
    else:
        scaled = number.scaleb(int(suffix[1:]))
    return math.ceil(scaled)


def format_quantity(value: int) -> str:
    """The shortest exact Kubernetes spelling of a whole number: ``1073741824`` -> ``"1Gi"``."""
    if value == 0:
        return "0"
    for suffix, factor in reversed(_BINARY_SUFFIXES.items()):
        if value % factor == 0:
            return f"{value // factor}{suffix}"
    for suffix in ("E", "P", "T", "G", "M", "k"):
        factor = int(_DECIMAL_SUFFIXES[suffix])
        if value % factor == 0:
            return f"{value // factor}{suffix}"
    return str(value)


def _quantity_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _checked_positive_quantity(value: str) -> str:
    if parse_quantity(value) <= 0:
        raise ValueError(f"must be greater than zero: {value!r}")
    return value


QUANTITY_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "maxLength": 64,  # bounds the cost of the CEL rules below
    "x-kubernetes-int-or-string": True,
}

POSITIVE_QUANTITY_RULES = [
    cel("isQuantity(string(self))", "must be a quantity such as 10Gi, 500M or 1073741824"),
    cel(
        "!isQuantity(string(self)) || quantity(string(self)).isGreaterThan(quantity('0'))",
        "must be greater than zero",
    ),
]

# A size: an int-or-string on the wire, kept as text in Python (``parse_quantity`` reads it).
PositiveQuantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    AfterValidator(_checked_positive_quantity),
    WithJsonSchema({**QUANTITY_SCHEMA, "x-kubernetes-validations": POSITIVE_QUANTITY_RULES}),
]

# --- durations --------------------------------------------------------------

DURATION_PATTERN = r"^([0-9]+(ms|s|m|h))+$"
_DURATION_PART_RE = re.compile(r"([0-9]+)(ms|s|m|h)")
_DURATION_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> float:
    """A Go-style duration such as ``"1h30m"`` or ``"90s"`` in seconds."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"not a duration: {value!r}")
    return sum(
        int(amount) * _DURATION_UNIT_SECONDS[unit]
        for amount, unit in _DURATION_PART_RE.findall(value)
    )
