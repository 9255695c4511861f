"""Where the webhook gets the Policy for a namespace: a file, or built-in defaults."""

from __future__ import annotations

from pathlib import Path

import yaml

from kubectl_agentroll.policy import BUILTIN, Policy, PolicyError, policy_from_document


def load_policy_file(path: Path) -> Policy:
    """Read a policy YAML file (an AgentRollPolicy or its spec); PolicyError names what is wrong."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise PolicyError(f"{path}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise PolicyError(f"{path}: not valid YAML: {err}") from None
    try:
        return policy_from_document(doc)
    except PolicyError as err:
        raise PolicyError(f"{path}: {err}") from None


class StaticPolicies:
    """One policy for every namespace; ready from the start."""

    def __init__(self, policy: Policy = BUILTIN) -> None:
        self.policy = policy
        self.ready = True

    def for_namespace(self, namespace: str | None) -> Policy:
        return self.policy
