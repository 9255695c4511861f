"""Tool requirements: which tool-server versions an agent works with (pure).

An agent declares them as `agentroll.dev/tool-requirements: "crm-mcp-server>=1.2.0,<2; search~=2.0"`:
entries separated by `;`, each a tool name followed by a PEP 440 version specifier set. PEP 440 is
evaluated by `packaging` (the PyPA's library behind pip), not by a range parser of ours. Its
rules hold, with one choice of ours: a running pre-release is a fact, not a candidate to install, so
1.3.0rc1 satisfies `>=1.2` (pip would skip it), while `<2` still excludes 2.0.0rc1 as PEP 440 says.
`~=2.0` means >=2.0,<3. A version that is not PEP 440 (`latest`, `1.2-alpine`) satisfies nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from kubectl_agentroll.composite import TOOL_REQUIREMENTS, AnnotationError

_OPERATOR_START = re.compile(r"[<>=!~^]")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9@][A-Za-z0-9@/._-]*$")


def is_tool_name(name: str) -> bool:
    """A tool's name as MCP servers are named: `crm-mcp-server`, `@scope/server-github`."""
    return bool(_TOOL_NAME.match(name))


class RequirementError(ValueError):
    """A requirement list is malformed; the message says which entry and why."""


@dataclass(frozen=True)
class Requirement:
    tool: str
    specifier: SpecifierSet

    def __str__(self) -> str:
        return f"{self.tool}{self.specifier}"

    def satisfied_by(self, version: str) -> bool:
        parsed = parse_version(version)
        return parsed is not None and self.specifier.contains(parsed, prereleases=True)


def parse_version(text: str) -> Version | None:
    """The PEP 440 version, or None for a version `packaging` cannot read (a tag like `latest`)."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _entry(text: str) -> Requirement:
    match = _OPERATOR_START.search(text)
    name, spec = (text[: match.start()], text[match.start():]) if match else (text, "")
    name, spec = name.strip(), spec.strip()
    if not is_tool_name(name):
        raise RequirementError(f"entry {text!r}: {name!r} is not a tool name")
    if spec.startswith("^"):
        raise RequirementError(
            f"entry {text!r}: '^' is npm's syntax; PEP 440 writes ^{spec[1:]} as ~={spec[1:]}"
        )
    try:
        specifier = SpecifierSet(spec)
    except InvalidSpecifier:
        raise RequirementError(
            f"entry {text!r}: {spec!r} is not a PEP 440 specifier (e.g. '>=1.2.0,<2' or '~=2.0')"
        ) from None
    return Requirement(name, specifier)


@lru_cache(maxsize=1024)
def parse_requirements(raw: str) -> tuple[Requirement, ...]:
    """`tool<specifier>[; tool<specifier>...]`, sorted by tool; a tool listed twice is an error.
    Memoised: every update of an agent is admitted with the same few strings."""
    found: dict[str, Requirement] = {}
    for text in (part.strip() for part in raw.split(";")):
        if not text:
            continue
        requirement = _entry(text)
        if requirement.tool in found:
            raise RequirementError(f"tool {requirement.tool!r} is listed twice")
        found[requirement.tool] = requirement
    return tuple(sorted(found.values(), key=lambda r: r.tool))


@lru_cache(maxsize=1024)
def canonical(requirements: tuple[Requirement, ...]) -> str:
    """One spelling per meaning, so that reordering entries or specifiers is no version change."""
    return "; ".join(str(r) for r in requirements)


def declared(annotations: Mapping) -> tuple[Requirement, ...]:
    """The requirements an object's annotations declare; AnnotationError names the annotation."""
    raw = annotations.get(TOOL_REQUIREMENTS)
    if raw is None:
        return ()
    if not isinstance(raw, str):
        raise AnnotationError(TOOL_REQUIREMENTS, f"expected a string, got {type(raw).__name__}")
    try:
        return parse_requirements(raw)
    except RequirementError as err:
        raise AnnotationError(TOOL_REQUIREMENTS, str(err)) from None
