"""The composite agent version: prompt + model + tools + image.

Kubernetes sees only the image; an agent's behaviour depends on four layers. This module turns a
Rollout's annotations (and its agent container) into one version identity that fits in labels, so
ReplicaSets, pods and metrics can be told apart by what really changed. Pure functions only: the
webhook, the offline `inject` command and the plugin all read versions through here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

PREFIX = "agentroll.dev/"

INJECT = PREFIX + "inject"
PROMPT = PREFIX + "prompt-version"
MODEL = PREFIX + "model-version"
TOOLS = PREFIX + "tools"
CONTAINER = PREFIX + "container"
ANALYSIS = PREFIX + "analysis"
TOOL_REQUIREMENTS = PREFIX + "tool-requirements"
DEPENDS_ON = PREFIX + "depends-on"
TOOL_SERVER = PREFIX + "tool-server"
TOOL_SERVER_VERSION = PREFIX + "tool-server-version"

TOOLS_VERSION = PREFIX + "tools-version"
IMAGE_VERSION = PREFIX + "image-version"
COMPOSITE_VERSION = PREFIX + "composite-version"

UNSET = "unset"
NO_TOOLS = "none"

LAYERS = ("prompt", "model", "tools", "image")
LAYER_LABELS = {
    "prompt": PROMPT,
    "model": MODEL,
    "tools": TOOLS_VERSION,
    "image": IMAGE_VERSION,
}
VERSION_LABELS = (*LAYER_LABELS.values(), COMPOSITE_VERSION)

DEFAULT_MODEL_ENV_VARS = ("MODEL", "MODEL_NAME", "LLM_MODEL", "OPENAI_MODEL", "ANTHROPIC_MODEL")

_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")
_INVALID_LABEL_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_HASH_SUFFIX_LEN = 8
_SHORT_HASH_LEN = 10


class AnnotationError(ValueError):
    """A Rollout annotation (or the field it points at) is malformed; the message names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@lru_cache(maxsize=4096)
def short_hash(text: str, length: int = _SHORT_HASH_LEN) -> str:
    import hashlib  # here: `status -A` never hashes

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def is_valid_label_value(value: str) -> bool:
    return bool(_LABEL_VALUE.match(value))


@lru_cache(maxsize=4096)
def label_value(raw: str) -> str:
    """`raw` as a valid label value: unchanged when already valid, else a readable, collision-safe form.

    Invalid characters become `-`, the ends are trimmed to alphanumerics and a hash of the raw value
    is appended, so two different raw values never share a sanitised label.
    """
    if is_valid_label_value(raw):
        return raw
    suffix = short_hash(raw, _HASH_SUFFIX_LEN)
    stem = _INVALID_LABEL_CHARS.sub("-", raw)
    stem = stem[: 63 - _HASH_SUFFIX_LEN - 1]
    stem = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", stem)
    return f"{stem}-{suffix}" if stem else suffix


@dataclass(frozen=True)
class Tool:
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


@lru_cache(maxsize=1024)
def parse_tools(raw: str) -> tuple[Tool, ...]:
    """Parse `name@version[,name@version...]`, sorted by name.

    The version is what follows the last `@`, so scoped names such as
    `@modelcontextprotocol/server-github@0.6.2` work. Empty entries (a trailing comma) are ignored.
    """
    tools: dict[str, Tool] = {}
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        name, at, version = entry.rpartition("@")
        if not at or not name or not version or any(c.isspace() for c in entry):
            raise AnnotationError(
                TOOLS,
                f"entry {entry!r} is not name@version "
                "(expected e.g. 'crm-mcp-server@1.2.0,search@2.0.1')",
            )
        if name in tools and tools[name].version != version:
            raise AnnotationError(
                TOOLS, f"tool {name!r} is listed twice ({tools[name].version} and {version})"
            )
        tools[name] = Tool(name, version)
    return tuple(sorted(tools.values(), key=lambda t: t.name))


@lru_cache(maxsize=1024)
def image_version(image: str) -> str:
    """The version part of an image reference: the digest (`sha256-<12 hex>`), else the tag, else `latest`."""
    ref, _, digest = image.partition("@")
    if digest:
        algorithm, _, hex_digest = digest.partition(":")
        return f"{algorithm}-{hex_digest[:12]}" if hex_digest else label_value(digest)
    last_component = ref.rsplit("/", 1)[-1]
    _, colon, tag = last_component.rpartition(":")
    return tag if colon and tag else "latest"


@dataclass(frozen=True)
class CompositeVersion:
    """The four layers of an agent version, raw as declared; `None` means the layer is undeclared."""

    prompt: str | None = None
    model: str | None = None
    tools: tuple[Tool, ...] | None = None
    image: str | None = None
    requirements: str | None = None
    """The tool requirements, canonical (`requirements.canonical`): part of the tools layer."""

    @cached_property
    def tools_list(self) -> str | None:
        return None if self.tools is None else ",".join(str(t) for t in self.tools)

    @cached_property
    def tools_layer(self) -> str | None:
        if self.requirements is None:
            return self.tools_list
        return " ".join(p for p in (self.tools_list, f"requires {self.requirements}") if p)

    def raw(self, layer: str) -> str | None:
        """The layer as a person wrote it (for tools: the canonical sorted list and requirements)."""
        return self.tools_layer if layer == "tools" else getattr(self, layer)

    def layer_label(self, layer: str) -> str:
        raw = self.raw(layer)
        if raw is None:
            return UNSET
        if layer == "tools":
            return short_hash(raw) if self.tools or self.requirements else NO_TOOLS
        if layer == "image":
            return label_value(image_version(raw))
        return label_value(raw)

    @property
    def composite(self) -> str:
        """Short hash over the four raw layers: equal exactly when every layer is equal."""
        return _derived(self)[2]

    @property
    def undeclared(self) -> tuple[str, ...]:
        return tuple(layer for layer in LAYERS if self.raw(layer) is None)

    def labels(self) -> dict[str, str]:
        return dict(_derived(self)[0])

    def annotations(self) -> dict[str, str]:
        """Raw values for the pod template, keyed like the labels, plus the full tool list."""
        return dict(_derived(self)[1])

    def changed_layers(self, other: CompositeVersion) -> list[tuple[str, str, str]]:
        """(layer, old, new) for each layer that differs from `other` (the older version)."""
        return [
            (layer, other.raw(layer) or UNSET, self.raw(layer) or UNSET)
            for layer in LAYERS
            if self.raw(layer) != other.raw(layer)
        ]


@lru_cache(maxsize=1024)
def _derived(version: CompositeVersion) -> tuple[dict[str, str], dict[str, str], str]:
    """Labels, pod-template annotations and composite hash of a version.

    Memoised: the same few versions are admitted over and over (every update of every Rollout).
    """
    composite = short_hash(json.dumps([version.raw(layer) for layer in LAYERS], separators=(",", ":")))
    labels = {LAYER_LABELS[layer]: version.layer_label(layer) for layer in LAYERS}
    labels[COMPOSITE_VERSION] = composite
    annotations = {LAYER_LABELS[layer]: version.raw(layer) or UNSET for layer in LAYERS}
    annotations[TOOLS_VERSION] = labels[TOOLS_VERSION]
    annotations[TOOLS] = version.tools_list if version.tools is not None else UNSET
    if version.requirements is not None:
        annotations[TOOL_REQUIREMENTS] = version.requirements
    annotations[COMPOSITE_VERSION] = composite
    return labels, annotations, composite


def _mapping(value: object, field: str) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AnnotationError(field, f"expected a map, got {type(value).__name__}")
    return value


def _string_annotation(annotations: Mapping, key: str) -> str | None:
    value = annotations.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise AnnotationError(key, f"expected a string, got {type(value).__name__}")
    return value.strip() or None


def agent_container(rollout: Mapping) -> Mapping | None:
    """The container that runs the agent: the one `agentroll.dev/container` names, else the first.

    `None` when the Rollout has no pod template (`spec.workloadRef`) or no containers.
    """
    metadata = _mapping(rollout.get("metadata"), "metadata")
    annotations = _mapping(metadata.get("annotations"), "metadata.annotations")
    wanted = _string_annotation(annotations, CONTAINER)
    spec = _mapping(rollout.get("spec"), "spec")
    template = _mapping(spec.get("template"), "spec.template")
    pod_spec = _mapping(template.get("spec"), "spec.template.spec")
    containers = pod_spec.get("containers") or []
    if not isinstance(containers, Sequence) or isinstance(containers, str):
        raise AnnotationError("spec.template.spec.containers", "expected a list")
    containers = [c for c in containers if isinstance(c, dict)]
    if wanted is None:
        return containers[0] if containers else None
    for container in containers:
        if container.get("name") == wanted:
            return container
    names = ", ".join(str(c.get("name")) for c in containers) or "none"
    raise AnnotationError(
        CONTAINER, f"no container named {wanted!r} in spec.template.spec.containers (have: {names})"
    )


def model_from_env(container: Mapping | None, env_vars: Iterable[str]) -> str | None:
    """The model id from the first listed env var the container sets to a literal value."""
    if container is None:
        return None
    env = container.get("env") or []
    if not isinstance(env, Sequence) or isinstance(env, str):
        return None
    literal = {
        e.get("name"): e.get("value")
        for e in env
        if isinstance(e, dict) and isinstance(e.get("name"), str)
        and isinstance(e.get("value"), str) and e.get("value").strip()
    }
    for name in env_vars:
        if name in literal:
            return literal[name].strip()
    return None


def composite_of(
    rollout: Mapping, model_env_vars: Iterable[str] = DEFAULT_MODEL_ENV_VARS
) -> CompositeVersion:
    """Read the composite version a Rollout declares. Raises AnnotationError naming what is wrong."""
    if not isinstance(rollout, dict):
        raise AnnotationError("object", "expected a Rollout object")
    metadata = _mapping(rollout.get("metadata"), "metadata")
    annotations = _mapping(metadata.get("annotations"), "metadata.annotations")
    container = agent_container(rollout)
    tools_raw = annotations.get(TOOLS)
    if tools_raw is not None and not isinstance(tools_raw, str):
        raise AnnotationError(TOOLS, f"expected a string, got {type(tools_raw).__name__}")
    image = container.get("image") if container else None
    return CompositeVersion(
        prompt=_string_annotation(annotations, PROMPT),
        model=_string_annotation(annotations, MODEL) or model_from_env(container, model_env_vars),
        tools=None if tools_raw is None else parse_tools(tools_raw),
        image=image.strip() or None if isinstance(image, str) else None,
        requirements=requirements_of(annotations),
    )


def requirements_of(annotations: Mapping) -> str | None:
    """The canonical tool requirements an object declares, None when it declares none."""
    if TOOL_REQUIREMENTS not in annotations:
        return None
    from kubectl_agentroll.requirements import canonical, declared  # packaging, only when needed

    return canonical(declared(annotations)) or None


def composite_from_annotations(annotations: Mapping) -> CompositeVersion:
    """Rebuild a version from the raw values the webhook wrote on a pod template."""

    def raw(key: str) -> str | None:
        value = annotations.get(key)
        return None if value in (None, UNSET) else str(value)

    tools = raw(TOOLS)
    return CompositeVersion(
        prompt=raw(PROMPT),
        model=raw(MODEL),
        tools=None if tools is None else parse_tools(tools),
        image=raw(IMAGE_VERSION),
        requirements=raw(TOOL_REQUIREMENTS),
    )
