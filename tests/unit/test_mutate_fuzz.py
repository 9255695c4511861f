"""Fuzz: arbitrary JSON in every field the engine reads. The engine never raises; it allows,
patches (with a patch that applies) or denies with a message that names the field at fault."""

from __future__ import annotations

import copy
import re

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubectl_agentroll import composite as cv
from kubectl_agentroll import network as net
from kubectl_agentroll.mutate import mutate
from kubectl_agentroll.netadmit import NetworkView
from kubectl_agentroll.policy import ALWAYS_APPEND, BUILTIN, Policy
from tests.unit.rollouts import request, rollout

json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 200) | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["true", "false", "none", "agent", "agent-quality", "a@1", "MODEL", "",
                       "crm>=1.2,<2", "crm^2", "planner,support-agent", "support-agent", "1.4.0"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)

A = ("metadata", "annotations")
C = ("spec", "template", "spec", "containers")
CANARY = ("spec", "strategy", "canary")
BG = ("spec", "strategy", "blueGreen")
ANALYSIS = {"templates": [{"templateName": "agent-quality"}], "args": [{"name": "rollout"}]}

# Every path the engine reads, relative to the Rollout object.
OBJECT_PATHS = [
    ("metadata",), A, ("metadata", "labels"), ("metadata", "name"),
    *[(*A, key) for key in (cv.INJECT, cv.PROMPT, cv.MODEL, cv.TOOLS, cv.CONTAINER, cv.ANALYSIS,
                            cv.TOOL_REQUIREMENTS, cv.DEPENDS_ON, cv.TOOL_SERVER, cv.TOOL_SERVER_VERSION)],
    ("spec",), ("spec", "template"), ("spec", "template", "metadata"),
    ("spec", "template", "metadata", "labels"), ("spec", "template", "metadata", "annotations"),
    ("spec", "template", "spec"), C, (*C, 0), (*C, 0, "name"), (*C, 0, "image"), (*C, 0, "env"),
    (*C, 0, "env", 0), (*C, 0, "env", 0, "name"), (*C, 0, "env", 0, "value"),
    ("spec", "workloadRef"), ("spec", "strategy"), CANARY, (*CANARY, "steps"), (*CANARY, "analysis"),
    (*CANARY, "steps", 0), (*CANARY, "steps", 0, "setWeight"), (*CANARY, "steps", 1),
    (*CANARY, "steps", 1, "pause"), (*CANARY, "steps", 2), (*CANARY, "steps", 2, "analysis"),
    (*CANARY, "steps", 2, "analysis", "templates"),
    (*CANARY, "steps", 2, "analysis", "templates", 0),
    (*CANARY, "steps", 2, "analysis", "templates", 0, "templateName"),
    BG, (*BG, "prePromotionAnalysis"), (*BG, "prePromotionAnalysis", "templates"),
    (*BG, "prePromotionAnalysis", "templates", 0),
    (*BG, "prePromotionAnalysis", "templates", 0, "templateName"),
    (*BG, "prePromotionAnalysis", "args"), (*BG, "prePromotionAnalysis", "args", 0),
    (*BG, "prePromotionAnalysis", "args", 0, "name"),
]
REQUEST_PATHS = [("kind",), ("kind", "group"), ("kind", "kind"), ("operation",), ("subResource",),
                 ("object",), ("oldObject",), ("namespace",), ("name",)]

# A denial starts with the field at fault: an annotation key or a dotted path into the object.
NAMED_FIELD = re.compile(r"^agentroll: (agentroll\.dev/[a-z-]+|(request\.)?(object|metadata|spec)[\w.\[\]]*): \S")


def base(strategy_kind: str) -> dict:
    obj = rollout()
    obj["metadata"]["annotations"].update({cv.MODEL: "m", cv.CONTAINER: "agent"})
    obj["metadata"]["labels"] = {"team": "a"}
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODEL", "value": "m"}]
    if strategy_kind == "blueGreen":
        obj["spec"]["strategy"] = {"blueGreen": {"prePromotionAnalysis": copy.deepcopy(ANALYSIS)}}
    else:
        steps = [{"setWeight": 5}, {"pause": {}}, {"analysis": copy.deepcopy(ANALYSIS)}]
        obj["spec"]["strategy"] = {"canary": {"steps": steps}}
    return obj


def put(tree: object, path: tuple, value: object) -> None:
    """Set `path` in `tree` when its parent exists (a list index past the end appends)."""
    node = tree
    for key in path[:-1]:
        in_map = isinstance(node, dict) and isinstance(key, str) and key in node
        in_list = isinstance(node, list) and isinstance(key, int) and key < len(node)
        if not (in_map or in_list):
            return
        node = node[key]
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int):
        if last < len(node):
            node[last] = value
        else:
            node.append(value)


def _network() -> NetworkView:
    """A cache the network rules can bite on: an agent requiring crm, a crm server, a dependency."""
    planner = rollout()
    planner["metadata"]["name"] = "planner"
    planner["metadata"]["annotations"].update({cv.TOOL_REQUIREMENTS: "crm>=1.2,<2", cv.DEPENDS_ON: "support-agent"})
    crm = rollout()
    crm["metadata"].update(name="crm", annotations={cv.TOOL_SERVER: "crm", cv.TOOL_SERVER_VERSION: "1.4.0"})
    return NetworkView(net.NetworkIndex.of([planner, crm]), lambda ns: BUILTIN)


NETWORK = _network()


@st.composite
def hostile_requests(draw):
    obj = base(draw(st.sampled_from(["canary", "blueGreen"])))
    if draw(st.booleans()):
        obj["metadata"]["annotations"].update({cv.TOOL_SERVER: "crm", cv.TOOL_SERVER_VERSION: "1.4.0"})
    old = copy.deepcopy(obj)
    kind = draw(st.sampled_from([("argoproj.io", "Rollout"), ("apps", "Deployment")]))
    req = request(obj, operation="UPDATE", old=old, kind=kind)
    for path in draw(st.lists(st.sampled_from(OBJECT_PATHS), min_size=1, max_size=4)):
        put(obj, path, draw(json_value))
    for path in draw(st.lists(st.sampled_from(OBJECT_PATHS), max_size=2)):
        put(old, path, draw(json_value))
    for path in draw(st.lists(st.sampled_from(REQUEST_PATHS), max_size=1)):
        put(req, path, draw(json_value))
    return req


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_requests(), st.sampled_from([BUILTIN, Policy(mode=ALWAYS_APPEND)]), st.sampled_from([None, NETWORK]))
def test_engine_never_raises_and_names_the_field_it_refuses(req, policy, network):
    obj = copy.deepcopy(req.get("object"))
    decision = mutate(req, policy, network)
    if not decision.allowed:
        assert NAMED_FIELD.match(decision.message or ""), decision.message
        assert decision.patch == []
        return
    if decision.patch:
        jsonpatch.apply_patch(obj, decision.patch)


def test_unhashable_env_name_and_template_name_are_handled():
    """The crashes the fuzz test found first: values used as dict keys or set members."""
    obj = base("canary")
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": ["MODEL"], "value": "m"}]
    obj["spec"]["strategy"]["canary"]["steps"][2]["analysis"]["templates"][0]["templateName"] = ["x"]
    assert mutate(request(obj), Policy(mode=ALWAYS_APPEND)).allowed
    bg = base("blueGreen")
    bg["spec"]["strategy"]["blueGreen"]["prePromotionAnalysis"] = {
        "templates": [{"templateName": {"a": 1}}], "args": [{"name": []}]}
    assert mutate(request(bg), Policy(mode=ALWAYS_APPEND)).allowed
