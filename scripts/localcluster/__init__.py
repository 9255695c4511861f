"""A real Kubernetes control plane on loopback, for AgentRoll's tests and demo.

One module per concern: `config` (paths, versions, the cache), `gobuild` (building pinned Go
modules into the cache), `pki` (certificates and kubeconfigs), `procs` (starting, tracking and
stopping processes), `health` (readiness checks), `kwok` (fake nodes), `components` (the table of
what runs, in order), `prometheus` (its config and scrape targets), `cluster` (up, down, status,
soak) and `cli` (the command line). `scripts/local-cluster` is the entry point.
"""
