import pytest

from kubectl_agentroll import composite as cv
from kubectl_agentroll.composite import (
    AnnotationError,
    CompositeVersion,
    composite_from_annotations,
    composite_of,
    image_version,
    is_valid_label_value,
    label_value,
    parse_tools,
)
from tests.unit.rollouts import rollout


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/example/agent:1.8.2", "1.8.2"),
        ("agent", "latest"),
        ("registry.local:5000/team/agent", "latest"),
        ("registry.local:5000/team/agent:v2", "v2"),
        ("agent@sha256:" + "ab" * 32, "sha256-abababababab"),
        ("agent:1.0@sha256:" + "cd" * 32, "sha256-cdcdcdcdcdcd"),
    ],
)
def test_image_version(image, expected):
    assert image_version(image) == expected


def test_tools_are_sorted_and_scoped_names_work():
    tools = parse_tools("search@2.0.1, @modelcontextprotocol/server-github@0.6.2,crm@1.2.0,")
    assert [str(t) for t in tools] == [
        "@modelcontextprotocol/server-github@0.6.2",
        "crm@1.2.0",
        "search@2.0.1",
    ]


@pytest.mark.parametrize("raw", ["crm", "crm@", "@1.0", "crm@1.0,search", "my tool@1"])
def test_malformed_tool_entry_names_the_annotation(raw):
    with pytest.raises(AnnotationError) as err:
        parse_tools(raw)
    assert str(err.value).startswith("agentroll.dev/tools: ")
    assert "name@version" in str(err.value)


def test_same_tool_twice_with_different_versions_is_an_error():
    with pytest.raises(AnnotationError, match="listed twice"):
        parse_tools("crm@1.0,crm@2.0")


def test_tool_order_does_not_change_the_version():
    a = CompositeVersion(tools=parse_tools("a@1,b@2"))
    b = CompositeVersion(tools=parse_tools("b@2, a@1"))
    assert a.labels() == b.labels()


@pytest.mark.parametrize(
    "raw",
    [
        "meta-llama/Llama-3.1-70B-Instruct:fp8",
        "x" * 64,
        "-leading",
        "trailing.",
        "über-model",
        "a b c",
        "////",
        "gpt-4o-2024-08-06" + "-" * 60 + "z",
    ],
)
def test_label_values_are_always_valid(raw):
    value = label_value(raw)
    assert is_valid_label_value(value)
    assert label_value(raw) == value


def test_valid_values_are_kept_as_written():
    assert label_value("claude-sonnet-4-20250514") == "claude-sonnet-4-20250514"


def test_sanitised_values_of_different_raw_values_differ():
    assert label_value("org/model:a") != label_value("org/model-a")
    assert label_value("a/b") != label_value("a:b")


def test_composite_is_a_fixed_function_of_the_layers():
    version = CompositeVersion(prompt="p1", model="m", tools=parse_tools("t@1"), image="img:1")
    # sha256 of the canonical JSON ["p1","m","t@1","img:1"], computed with sha256sum: stable
    # across runs, machines and Python versions.
    assert version.composite == "df64e560fa"
    assert CompositeVersion(prompt="p2", model="m", tools=parse_tools("t@1"), image="img:1").composite != version.composite


def test_image_with_same_tag_in_another_repository_is_another_version():
    a = CompositeVersion(image="registry-a/agent:1.0")
    b = CompositeVersion(image="registry-b/agent:1.0")
    assert a.labels()[cv.IMAGE_VERSION] == b.labels()[cv.IMAGE_VERSION] == "1.0"
    assert a.composite != b.composite


def test_undeclared_layers_are_unset():
    version = CompositeVersion()
    assert version.undeclared == cv.LAYERS
    assert {version.labels()[cv.LAYER_LABELS[layer]] for layer in cv.LAYERS} == {cv.UNSET}


def test_declared_empty_tool_list_is_not_unset():
    version = CompositeVersion(tools=parse_tools(""))
    assert version.labels()[cv.TOOLS_VERSION] == cv.NO_TOOLS
    assert version.composite != CompositeVersion().composite


def test_model_comes_from_env_when_not_annotated():
    version = composite_of(rollout())
    assert version.model == "claude-sonnet-4-20250514"
    assert version.image == "ghcr.io/example/support-agent:1.8.2"


def test_model_env_var_list_is_in_priority_order_and_literal_only():
    obj = rollout()
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "OPENAI_MODEL", "value": "gpt-4o"},
        {"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
        {"name": "LLM_MODEL", "value": "llama"},
    ]
    assert composite_of(obj).model == "llama"
    assert composite_of(obj, ("OPENAI_MODEL", "LLM_MODEL")).model == "gpt-4o"


def test_annotation_wins_over_env():
    obj = rollout()
    obj["metadata"]["annotations"][cv.MODEL] = "claude-opus-4"
    assert composite_of(obj).model == "claude-opus-4"


def test_container_annotation_selects_the_agent():
    obj = rollout()
    obj["spec"]["template"]["spec"]["containers"].insert(0, {"name": "proxy", "image": "envoy:1.30"})
    assert composite_of(obj).image == "envoy:1.30"
    obj["metadata"]["annotations"][cv.CONTAINER] = "agent"
    assert composite_of(obj).image == "ghcr.io/example/support-agent:1.8.2"
    obj["metadata"]["annotations"][cv.CONTAINER] = "nope"
    with pytest.raises(AnnotationError, match=r"agentroll.dev/container: no container named 'nope'.*have: proxy, agent"):
        composite_of(obj)


def test_raw_values_round_trip_through_pod_template_annotations():
    version = composite_of(rollout())
    assert composite_from_annotations(version.annotations()) == version
    assert composite_from_annotations(CompositeVersion().annotations()) == CompositeVersion()


def test_changed_layers():
    old = CompositeVersion(prompt="v1", model="m1", image="a:1")
    new = CompositeVersion(prompt="v2", model="m2", image="a:1")
    assert new.changed_layers(old) == [("prompt", "v1", "v2"), ("model", "m1", "m2")]
