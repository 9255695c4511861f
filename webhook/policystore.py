"""Where the webhook gets the Policy for a namespace: a file, or built-in defaults."""

from __future__ import annotations

from kubectl_agentroll.policy import BUILTIN, Policy, load_policy_file

__all__ = ["StaticPolicies", "load_policy_file"]


class StaticPolicies:
    """One policy for every namespace; ready from the start."""

    def __init__(self, policy: Policy = BUILTIN) -> None:
        self.policy = policy
        self.ready = True
        self.network = None

    def for_namespace(self, namespace: str | None) -> Policy:
        return self.policy
