"""`agentroll-webhook`: serve admission reviews, or make the certificates to serve them with."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sys
from pathlib import Path

import click

from kubectl_agentroll.policy import PolicyError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The AgentRoll mutating admission webhook.

    For opted-in Argo Rollouts it injects the composite agent version (prompt + model + tools +
    image) as labels on the Rollout and its pods, and agent-quality analysis gates.
    """


@main.command()
@click.option("--port", default=8443, show_default=True, help="HTTPS port.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--tls-cert-file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Serving certificate (PEM); reloaded when it changes on disk.")
@click.option("--tls-private-key-file", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="Its private key (PEM).")
@click.option("--policy-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Policy YAML (an AgentRollPolicy or its spec); built-in defaults otherwise.")
@click.option("--cert-check-interval", default=2.0, show_default=True,
              help="Seconds between checks of the certificate files.")
@click.option("--shutdown-timeout", default=10.0, show_default=True,
              help="Seconds open connections get, in all, to finish their request after SIGTERM.")
@click.option("--request-timeout", default=10.0, show_default=True,
              help="Seconds a request gets from its first byte to its last response byte (and the "
                   "TLS handshake); then the connection is closed. Keep it >= the "
                   "MutatingWebhookConfiguration's timeoutSeconds.")
@click.option("--metrics-port", type=int,
              help="Also serve GET /metrics over plain HTTP on this port (for a NetworkPolicy that "
                   "admits Prometheus to metrics only).")
@click.option("--idle-timeout", default=120.0, show_default=True,
              help="Seconds an idle keep-alive connection stays open; above the API server's 90 s "
                   "so that it, not the webhook, closes idle connections.")
@click.option("--watch-policies/--no-watch-policies", default=None,
              help="Take policies from the cluster's AgentRollPolicies (list + watch). Default: on "
                   "when in-cluster or --kubeconfig is given, and no --policy-file.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False),
              help="For --watch-policies; in-cluster config otherwise.")
@click.option("--context", "kube_context", help="Kubeconfig context, for --watch-policies.")
@click.option("--resync-seconds", default=300.0, show_default=True,
              help="Relist policies and namespaces this often (--watch-policies).")
@click.option("--watch-network/--no-watch-network", default=True, show_default=True,
              help="With --watch-policies, also cache Rollouts and tool-server Deployments, to check "
                   "tool requirements and dependency cycles at admission (README: Agent networks).")
def serve(port, host, tls_cert_file, tls_private_key_file, policy_file, cert_check_interval,
          shutdown_timeout, request_timeout, metrics_port, idle_timeout, watch_policies, kubeconfig,
          kube_context, resync_seconds, watch_network) -> None:
    """Serve POST /mutate, GET /healthz, /readyz and /metrics over HTTPS."""
    import ssl

    from webhook.policystore import StaticPolicies, load_policy_file
    from webhook.server import make_app
    from webhook.server import serve as run
    from webhook.tls import ReloadingTLS

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if watch_policies is None:
        in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        watch_policies = not policy_file and (bool(kubeconfig) or in_cluster)
    if watch_policies and policy_file:
        raise click.ClickException("--policy-file and --watch-policies exclude each other")
    if watch_policies:
        policies = _start_watch(kubeconfig, kube_context, resync_seconds, watch_network,
                                "--watch-policies")  # readyz answers 503 until everything is listed
    else:
        try:
            policy = load_policy_file(policy_file) if policy_file else None
            policies = StaticPolicies(policy) if policy else StaticPolicies()
        except PolicyError as err:
            raise click.ClickException(f"--policy-file {err}") from None
    try:
        tls = ReloadingTLS(tls_cert_file, tls_private_key_file, interval=cert_check_interval)
    except (OSError, ssl.SSLError) as err:
        raise click.ClickException(
            f"--tls-cert-file/--tls-private-key-file: cannot load the pair: {err}"
        ) from None
    try:
        asyncio.run(run(make_app(policies), host, port, tls, shutdown_timeout=shutdown_timeout,
                        request_timeout=request_timeout, idle_timeout=idle_timeout,
                        metrics_port=metrics_port))
    except OSError as err:
        raise click.ClickException(f"--port {port}: cannot listen: {err.strerror}") from None


@main.command()
@click.option("--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for ca.crt (the CA bundle), ca.key, tls.crt and tls.key (keys 0600).")
@click.option("--dns-name", "dns_names", multiple=True,
              help="DNS SAN, e.g. agentroll-webhook.agentroll.svc (repeatable).")
@click.option("--ip", "ips", multiple=True, help="IP SAN, e.g. 127.0.0.1 (repeatable).")
@click.option("--days", default=365, show_default=True, help="Validity of the serving certificate.")
@click.option("--ca-days", default=3650, show_default=True, help="Validity of a new CA.")
@click.option("--webhook-config", help="Also set this MutatingWebhookConfiguration's caBundle.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="For --webhook-config.")
@click.option("--context", "kube_context", help="Kubeconfig context, for --webhook-config.")
def certs(out_dir, dns_names, ips, days, ca_days, webhook_config, kubeconfig, kube_context) -> None:
    """Write a CA and a serving certificate signed by it, for the given SANs; run it again to
    renew.

    A renewal keeps the CA (ca.key) and re-issues the serving certificate, so the CA bundle does
    not change. When the CA nears its end, one renewal adds the next CA to the bundle and the
    following one signs with it; the old CA stays in the bundle until it expires. Either way the
    serving certificate verifies against the bundle from before and from after the renewal, so
    the bundle and the serving pair may be updated in either order.

    \b
    Examples:
      agentroll-webhook certs --out-dir certs --dns-name agentroll-webhook.agentroll.svc
      agentroll-webhook certs --out-dir certs --ip 127.0.0.1 --webhook-config agentroll-webhook
    """
    from webhook import certs as certmod

    try:
        state = certmod.renew(certmod.load(out_dir), list(dns_names), list(ips), days=days,
                              ca_days=ca_days)
    except ValueError as err:
        raise click.ClickException(f"--ip/--dns-name: {err}") from None
    try:
        paths = certmod.write(state, out_dir)
    except OSError as err:
        raise click.ClickException(f"--out-dir {out_dir}: {err.strerror}") from None
    for event in state.events:
        click.echo(event)
    for path in paths.values():
        click.echo(f"wrote {path}")
    if webhook_config:
        _patch_ca_bundle(webhook_config, state.ca_pem, kubeconfig, kube_context)
        click.echo(f"set caBundle of mutatingwebhookconfiguration/{webhook_config}")


@main.command()
@click.option("--port", default=8090, show_default=True, help="Port of GET /v1/verdict.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--prometheus", "prometheus_address", required=True,
              help="Prometheus base URL to judge from, e.g. http://prometheus-operated.monitoring:9090.")
@click.option("--allow-prometheus", "allowed", multiple=True,
              help="Another Prometheus a request's prometheus= may name (repeatable); others are refused.")
@click.option("--query-timeout", default=10.0, show_default=True, help="Seconds per Prometheus query.")
@click.option("--tls-cert-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Serve HTTPS with this certificate (PEM); plain HTTP without.")
@click.option("--tls-private-key-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Its private key (PEM).")
@click.option("--watch-network/--no-watch-network", default=None,
              help="Cache agent Rollouts for GET /v1/dependencies (the dependency gate). Default: on "
                   "when in-cluster or --kubeconfig is given.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="For --watch-network.")
@click.option("--context", "kube_context", help="Kubeconfig context, for --watch-network.")
def judge(port, host, prometheus_address, allowed, query_timeout, tls_cert_file,
          tls_private_key_file, watch_network, kubeconfig, kube_context) -> None:
    """Serve the canary judge Argo calls: GET /v1/verdict, /v1/dependencies, /healthz, /readyz,
    /metrics.

    \b
    Example:
      agentroll-webhook judge --prometheus http://127.0.0.1:9090 --port 8090
      curl 'http://127.0.0.1:8090/v1/verdict?namespace=agents&rollout=support-agent\\
        &canary-hash=6d9f8&stable-hash=5c8b7&plan=5:5m,25:10m,50:10m&interval=1m'
    """
    import ssl

    from webhook.judgeserver import make_app, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not prometheus_address.startswith(("http://", "https://")):
        raise click.ClickException(f"--prometheus {prometheus_address!r}: expected an http(s):// URL")
    context = None
    if tls_cert_file or tls_private_key_file:
        if not (tls_cert_file and tls_private_key_file):
            raise click.ClickException("--tls-cert-file and --tls-private-key-file go together")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(tls_cert_file, tls_private_key_file)
        except (OSError, ssl.SSLError) as err:
            raise click.ClickException(f"--tls-cert-file/--tls-private-key-file: {err}") from None
    if watch_network is None:
        watch_network = bool(kubeconfig) or bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    cache = _start_watch(kubeconfig, kube_context, 300.0, True, "--watch-network") \
        if watch_network else None
    app = make_app(prometheus_address, tuple(allowed), query_timeout, cache)
    try:
        asyncio.run(serve(app, host, port, context))
    except OSError as err:
        raise click.ClickException(f"--port {port}: cannot listen: {err.strerror}") from None


def _start_watch(kubeconfig, kube_context, resync_seconds: float, network: bool, flag: str):
    from kubectl_agentroll.kube import KubeError
    from kubectl_agentroll.network import NetworkIndex
    from webhook.policywatch import make_watch

    try:
        watch = make_watch(kubeconfig, kube_context, resync=resync_seconds,
                           network=NetworkIndex() if network else None)
    except KubeError as err:
        raise click.ClickException(f"{flag}: {err}") from None
    watch.start()
    return watch


def _patch_ca_bundle(name: str, ca_pem: bytes, kubeconfig, kube_context) -> None:
    from kubernetes import client

    from kubectl_agentroll.kube import KubeError, api_client, call

    ca = base64.b64encode(ca_pem).decode()
    try:
        admission = client.AdmissionregistrationV1Api(api_client(kubeconfig, kube_context))
        config = call(admission.read_mutating_webhook_configuration, name,
                      what=f"mutatingwebhookconfiguration/{name}")
        patch = [
            {"op": "replace" if hook.client_config.ca_bundle else "add",
             "path": f"/webhooks/{i}/clientConfig/caBundle", "value": ca}
            for i, hook in enumerate(config.webhooks or [])
        ]
        call(admission.patch_mutating_webhook_configuration, name, patch,
             what=f"mutatingwebhookconfiguration/{name}")
    except KubeError as err:
        raise click.ClickException(f"--webhook-config {name}: {err}") from None


def run() -> None:
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
