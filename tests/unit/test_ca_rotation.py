"""CA rotation without an outage: every serving certificate verifies against the CA bundle from
before its renewal and from after it, so the bundle and the pair may be updated in either order."""

from __future__ import annotations

import datetime as dt
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.unit.rollouts import request, rollout
from tests.unit.serverproc import WEBHOOK, Webhook
from webhook import certs

SANS = (["localhost"], ["127.0.0.1"])


def signed_by_bundle(state: certs.CertState, bundle: tuple) -> bool:
    for ca in bundle:
        try:
            state.cert.verify_directly_issued_by(ca)
            return True
        except (ValueError, TypeError, Exception):  # noqa: BLE001 - InvalidSignature and kin
            continue
    return False


def test_renewal_reuses_the_ca_and_the_bundle_does_not_change():
    first = certs.renew(None, *SANS)
    second = certs.renew(first, *SANS)
    assert second.cas == first.cas and second.events == ()
    assert second.cert != first.cert and signed_by_bundle(second, first.cas)


def test_ca_rotation_goes_through_an_overlap_of_both_cas():
    now = dt.datetime.now(dt.timezone.utc)
    states = [certs.renew(None, *SANS, days=10, ca_days=90, now=now)]
    for step in range(1, 8):
        states.append(certs.renew(states[-1], *SANS, days=10, ca_days=90,
                                  now=now + dt.timedelta(days=10 * step, hours=1)))
    steps = [e[0].split()[0] if e else "-" for e in (s.events for s in states)]
    # day 50: the CA (90 days) would end within 10 + 30 days, so the next one joins the bundle;
    # day 60: it signs.
    assert steps == ["new", "-", "-", "-", "-", "added", "now", "-"]
    assert [len(s.cas) for s in states] == [1, 1, 1, 1, 1, 2, 2, 2]
    for before, after in zip(states, states[1:], strict=False):
        assert signed_by_bundle(after, before.cas), "pair first, bundle later"
        assert signed_by_bundle(after, after.cas), "bundle first, pair later"
    dropped = certs.renew(states[-1], *SANS, days=10, ca_days=90, now=now + dt.timedelta(days=91))
    assert len(dropped.cas) == 1, "the old CA leaves the bundle once it has expired"


def test_load_and_write_round_trip(tmp_path):
    state = certs.renew(certs.renew(None, *SANS, days=10, ca_days=40), *SANS, days=10, ca_days=40)
    assert state.next_key is not None
    certs.write(state, tmp_path)
    assert (tmp_path / "ca-next.key").stat().st_mode & 0o777 == 0o600
    loaded = certs.load(tmp_path)
    assert loaded.cas == state.cas and loaded.cert == state.cert
    assert certs.renew(loaded, *SANS, days=10, ca_days=40).events[0].startswith("now signing")


def _renew(directory: Path, days: int) -> str:
    return subprocess.run([*WEBHOOK, "certs", "--out-dir", str(directory), "--ip", "127.0.0.1",
                           "--dns-name", "localhost", "--days", str(days), "--ca-days", "40"],
                          check=True, capture_output=True, text=True).stdout


def _publish(source: Path, target: Path) -> None:
    """Replace `target` at once, as a Secret mount or an API object update does."""
    shutil.copy(source, target.with_name(f".{target.name}.new"))
    target.with_name(f".{target.name}.new").replace(target)


def _served(hook: Webhook) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    import socket

    with socket.create_connection(("127.0.0.1", hook.port)) as raw, ctx.wrap_socket(raw) as tls:
        return tls.getpeercert(binary_form=True)


@pytest.mark.parametrize("bundle_first", [True, False], ids=["bundle-before-pair", "pair-before-bundle"])
def test_rotation_while_a_client_loop_runs_fails_no_request(tmp_path, bundle_first):
    """Three renewals of a 40-day CA: with --days 1 the CA is reused; with --days 10 it would end
    within 10 + 30 days, so the next CA joins the bundle; the renewal after that signs with it.
    The client trusts only the bundle it was last given."""
    _renew(tmp_path / "certs", days=1)
    hook = Webhook(tmp_path)
    trusted = tmp_path / "client-bundle.crt"
    shutil.copy(hook.certs / "ca.crt", trusted)
    failures, successes, stop = [], [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                ctx = ssl.create_default_context(cafile=str(trusted))
                status, _ = hook.review(request(rollout()), conn=hook.connect(ctx))
                (successes if status == 200 else failures).append(status)
            except Exception as err:  # noqa: BLE001 - every failure is recorded and asserted on
                failures.append(repr(err))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for days, expected in ((1, ""), (10, "added the next CA"), (10, "now signing with")):
            before = _served(hook)
            staging = tmp_path / "staging"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(hook.certs, staging)
            assert expected in _renew(staging, days)
            if bundle_first:
                _publish(staging / "ca.crt", trusted)
                time.sleep(0.3)
            for name in ("ca.crt", "ca.key", "ca-next.key", "tls.key", "tls.crt"):
                if (staging / name).exists():
                    _publish(staging / name, hook.certs / name)
            deadline = time.monotonic() + 10
            while _served(hook) == before:
                assert time.monotonic() < deadline, "the renewed pair was never served"
                time.sleep(0.05)
            time.sleep(0.3)
            if not bundle_first:
                _publish(staging / "ca.crt", trusted)
                time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        hook.stop()
    assert failures == []
    assert len(successes) > 30
    assert len(list(trusted.read_bytes().split(b"BEGIN CERTIFICATE"))) - 1 == 2
