"""An agent traffic generator for the local control plane: it follows Argo Rollouts, splits a task
rate between their stable and canary pods the way Argo has set the weight, simulates each task
with the quality a scenario gives that pod's version, and serves the agent metrics contract on
/metrics for Prometheus.

Modules: `scenario` (quality per composite-version layer; pure), `split` (Rollout + pods -> which
pod gets what share; pure), `simulate` (tasks -> counter increments; pure), `exposition` (counters ->
Prometheus text; pure), `follow` (reading Rollouts and pods from the API) and `cli`.
"""
