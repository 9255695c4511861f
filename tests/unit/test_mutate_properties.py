"""Properties of the engine over generated Rollouts: the patch applies, labels are valid, a second
admission changes nothing, and the user's steps survive in order."""

import copy

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubectl_agentroll import composite as cv
from kubectl_agentroll.composite import is_valid_label_value
from kubectl_agentroll.mutate import mutate
from kubectl_agentroll.policy import ALWAYS_APPEND, BUILTIN, Policy
from tests.unit.rollouts import request

text = st.text(min_size=0, max_size=90)
tool_name = st.from_regex(r"@?[a-z][a-z0-9/_.-]{0,20}", fullmatch=True)
tool_version = st.from_regex(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,12}", fullmatch=True)
tools = st.dictionaries(tool_name, tool_version, max_size=4).map(
    lambda d: ",".join(f"{k}@{v}" for k, v in d.items())
)
image = st.one_of(
    st.from_regex(r"[a-z0-9.-]{1,20}(:[0-9]{2,5})?/[a-z0-9/_-]{1,30}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?", fullmatch=True),
    st.from_regex(r"[a-z0-9/]{1,30}@sha256:[0-9a-f]{64}", fullmatch=True),
)
step = st.one_of(
    st.builds(lambda w: {"setWeight": w}, st.integers(0, 100)),
    st.just({"pause": {}}),
    st.builds(lambda d: {"pause": {"duration": d}}, st.sampled_from(["30s", "5m", 60])),
    st.just({"setCanaryScale": {"replicas": 1}}),
    st.just({"analysis": {"templates": [{"templateName": "user-gate"}]}}),
)
strategy = st.one_of(
    st.builds(lambda s: {"canary": {"steps": s}}, st.lists(step, max_size=8)),
    st.just({"canary": {}}),
    st.just({"blueGreen": {"activeService": "active"}}),
)
optional = lambda s: st.one_of(st.none(), s)  # noqa: E731


@st.composite
def rollouts(draw):
    annotations = {cv.INJECT: "true"}
    for key, values in ((cv.PROMPT, text), (cv.MODEL, text), (cv.TOOLS, tools)):
        value = draw(optional(values))
        if value is not None:
            annotations[key] = value
    env = draw(optional(st.builds(lambda m: [{"name": "MODEL", "value": m}], text)))
    container = {"name": "agent", "image": draw(image)}
    if env:
        container["env"] = env
    template_metadata = draw(st.sampled_from([None, {}, {"labels": {"app": "a"}}, {"labels": None, "annotations": {"x/y~z": "1"}}]))
    template = {"spec": {"containers": [container]}}
    if template_metadata is not None:
        template["metadata"] = copy.deepcopy(template_metadata)
    metadata = {"name": "agent", "annotations": annotations}
    if draw(st.booleans()):
        metadata["labels"] = {cv.PROMPT: draw(text.filter(is_valid_label_value)), "team": "a"}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": metadata,
        "spec": {"template": template, "strategy": draw(strategy)},
    }


policies = st.sampled_from([BUILTIN, Policy(mode=ALWAYS_APPEND)])
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def user_steps(obj):
    canary = obj["spec"]["strategy"].get("canary") or {}
    return canary.get("steps") or []


@SETTINGS
@given(rollouts(), policies)
def test_patch_applies_labels_valid_and_second_admission_is_a_no_op(obj, policy):
    decision = mutate(request(copy.deepcopy(obj)), policy)
    if not decision.allowed:
        # Only a malformed tools annotation can be refused here, and then by name.
        assert decision.message.startswith(f"agentroll: {cv.TOOLS}: ")
        return
    out = jsonpatch.apply_patch(obj, decision.patch)
    for labels in (out["metadata"]["labels"], out["spec"]["template"]["metadata"]["labels"]):
        for key in cv.VERSION_LABELS:
            assert is_valid_label_value(labels[key]), (key, labels[key])
    again = mutate(request(out), policy)
    assert again.allowed and again.patch == []


@SETTINGS
@given(rollouts(), policies)
def test_user_steps_survive_in_order_and_arrays_are_never_replaced(obj, policy):
    decision = mutate(request(copy.deepcopy(obj)), policy)
    if not decision.allowed:
        return
    for op in decision.patch:
        assert op["op"] in ("add", "replace")
        if op["op"] == "replace":
            assert not isinstance(op["value"], (list, dict))
    out = jsonpatch.apply_patch(obj, decision.patch)
    before = user_steps(obj)
    after = user_steps(out)
    if before:
        injected = [s for s in after if s not in before]
        assert [s for s in after if s in before] == before
        assert all(set(s) == {"analysis"} for s in injected)


@SETTINGS
@given(rollouts())
def test_composite_label_is_equal_exactly_when_layers_are_equal(obj):
    other = copy.deepcopy(obj)
    other["metadata"]["annotations"][cv.PROMPT] = obj["metadata"]["annotations"].get(cv.PROMPT, "") + "!"
    a = mutate(request(obj), BUILTIN)
    b = mutate(request(other), BUILTIN)
    if a.allowed and b.allowed:
        assert a.version.composite != b.version.composite
        assert mutate(request(copy.deepcopy(obj)), BUILTIN).version.composite == a.version.composite
