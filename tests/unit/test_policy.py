"""AgentRollPolicy namespace selection and resolution (kubectl_agentroll.policy)."""

from __future__ import annotations

import pytest

from kubectl_agentroll.policy import (
    BUILTIN,
    PolicyError,
    policy_from_spec,
    resolve,
    selector_matches,
    selects,
)


def pol(name: str, selector=None, priority: int = 0, **spec):
    if selector is not None:
        spec["namespaceSelector"] = selector
    return policy_from_spec({"priority": priority, **spec}, name=name)


LABELS = {"team": "support", "tier": "prod", "kubernetes.io/metadata.name": "support-prod"}


@pytest.mark.parametrize(
    "selector, expected",
    [
        ({}, True),
        ({"matchLabels": {"team": "support"}}, True),
        ({"matchLabels": {"team": "support", "tier": "dev"}}, False),
        ({"matchLabels": {"missing": ""}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["prod", "staging"]}]},
         True),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["dev"]}]}, False),
        ({"matchExpressions": [{"key": "absent", "operator": "In", "values": ["x"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["dev"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["prod"]}]}, False),
        ({"matchExpressions": [{"key": "absent", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "absent", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "absent", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, False),
        ({"matchLabels": {"team": "support"},
          "matchExpressions": [{"key": "tier", "operator": "In", "values": ["dev"]}]}, False),
    ],
)
def test_selector_follows_label_selector_semantics(selector, expected):
    assert selector_matches(selector, LABELS) is expected
    assert selects(pol("p", selector), LABELS) is expected


def test_a_policy_without_selector_selects_no_namespace():
    assert selects(pol("default"), LABELS) is False


def test_highest_priority_selecting_policy_wins_and_opts_the_namespace_in():
    low = pol("a-low", {"matchLabels": {"team": "support"}}, priority=1)
    high = pol("z-high", {"matchLabels": {"tier": "prod"}}, priority=10)
    chosen = resolve([low, high], LABELS)
    assert chosen.name == "z-high"
    assert chosen.selects_namespace is True


def test_equal_priority_is_broken_by_name_ascending():
    policies = [pol(n, {}, priority=5) for n in ("charlie", "alpha", "bravo")]
    assert resolve(policies, LABELS).name == "alpha"
    assert resolve(list(reversed(policies)), LABELS).name == "alpha"


def test_selecting_policy_beats_higher_priority_default():
    default = pol("default", priority=100)
    team = pol("team", {"matchLabels": {"team": "support"}}, priority=0)
    assert resolve([default, team], LABELS).name == "team"


def test_default_policy_applies_where_nothing_selects_without_opting_in():
    default = pol("default")
    team = pol("team", {"matchLabels": {"team": "billing"}})
    chosen = resolve([team, default], LABELS)
    assert chosen.name == "default"
    assert chosen.selects_namespace is False


def test_builtin_when_no_policy_applies():
    assert resolve([pol("team", {"matchLabels": {"team": "billing"}})], LABELS) is BUILTIN
    assert resolve([], {}) is BUILTIN


@pytest.mark.parametrize(
    "selector, field",
    [
        ({"matchLabels": {"team": 3}}, "spec.namespaceSelector.matchLabels.team"),
        ({"matchLabels": ["team"]}, "spec.namespaceSelector.matchLabels"),
        ({"matchExpressions": {"key": "x"}}, "spec.namespaceSelector.matchExpressions"),
        ({"matchExpressions": [{"key": "x", "operator": "Equals", "values": ["a"]}]},
         "spec.namespaceSelector.matchExpressions[0].operator"),
        ({"matchExpressions": [{"key": "x", "operator": "In"}]},
         "spec.namespaceSelector.matchExpressions[0].values"),
        ({"matchExpressions": [{"key": "x", "operator": "In", "values": []}]},
         "spec.namespaceSelector.matchExpressions[0].values"),
        ({"matchExpressions": [{"key": "x", "operator": "Exists", "values": ["a"]}]},
         "spec.namespaceSelector.matchExpressions[0].values"),
        ({"matchExpressions": [{"operator": "Exists"}]},
         "spec.namespaceSelector.matchExpressions[0].key"),
        ({"matchNames": ["a"]}, "spec.namespaceSelector.matchNames"),
    ],
)
def test_invalid_selector_is_rejected_naming_the_field(selector, field):
    with pytest.raises(PolicyError) as err:
        policy_from_spec({"namespaceSelector": selector})
    assert str(err.value).startswith(field + ":")


def test_full_spec_round_trips_into_a_policy():
    policy = policy_from_spec(
        {
            "namespaceSelector": {"matchLabels": {"agentroll.dev/agents": "true"}},
            "priority": 7,
            "analysis": {"templates": [{"name": "agent-quality"}], "mode": "always-append",
                         "args": [{"name": "window", "value": "10m"}]},
            "allowedTemplates": ["agent-quality", "agent-safety"],
            "defaultSteps": [{"setWeight": 10}, {"pause": {"duration": "5m"}}],
            "modelEnvVars": ["MODEL"],
        },
        name="agents",
    )
    assert (policy.name, policy.priority, policy.mode) == ("agents", 7, "always-append")
    assert [t.name for t in policy.templates] == ["agent-quality"]
    assert policy.allows("agent-safety") and not policy.allows("other")
    assert policy.extra_args == ({"name": "window", "value": "10m"},)
    assert selects(policy, {"agentroll.dev/agents": "true"})


def test_judge_look_settings():
    p = policy_from_spec({"analysis": {"backgroundTemplates": [], "lookInterval": "30s"}})
    assert p.background_templates == () and p.look_interval == "30s"
    assert policy_from_spec({}).background_templates[0].name == "agent-quality-watch"
    for bad, field in (({"lookInterval": "1.5m"}, "lookInterval"), ({"lookInterval": "0s"}, "lookInterval"),
                       ({"backgroundTemplates": "x"}, "backgroundTemplates"),
                       ({"backgroundTemplates": [{"name": "Bad_Name"}]}, "backgroundTemplates[0]")):
        with pytest.raises(PolicyError) as e:
            policy_from_spec({"analysis": bad})
        assert f"spec.analysis.{field}" in str(e.value)
