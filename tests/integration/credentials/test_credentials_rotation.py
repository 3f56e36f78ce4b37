"""Token renewal with a fake clock and a fixed jitter, reconciling by hand (no workers, no sleeps): the requeue
lands at 80 % of the lifetime plus the jitter, nothing is renewed before, a new token replaces the old one in the
Secret after, and a changed spec.duration gets a token of the new lifetime at once."""

from __future__ import annotations

import time
from typing import Any

import yaml
from credentials_harness import NS, SVC, Env, FakeClock, credential_request, secret_values

from controller.credentials.refs import parse_time
from controller.kube.objects import ObjKey
from tests.waiting import eventually

KEY = ObjKey(NS, "ovn")


def token_of(env: Env) -> str:
    config = yaml.safe_load(secret_values(env.secret("ovn-dpu-credentials"))["kubeconfig"])
    return str(config["users"][0]["user"]["token"])


def times(obj: dict[str, Any] | None) -> tuple[float, float]:
    status = (obj or {}).get("status") or {}
    expires, issued = parse_time(status.get("expirationTimestamp")), parse_time(status.get("issuedAt"))
    assert expires is not None and issued is not None, status
    return expires, issued


async def cached(env: Env, check: Any, what: str) -> dict[str, Any]:
    """The request as the informer has it, once `check` holds for it."""
    return await eventually(lambda: (o := env.requests.get(NS, "ovn")) is not None and check(o) and o, 10, what)


async def test_renewal_at_eighty_percent_with_jitter(env: Env) -> None:
    clock = FakeClock(time.time())
    work = env.make_work(clock=clock, jitter=lambda: 0.55)  # 5 s of jitter
    await env.host.apply_object(credential_request("ovn", duration="10m"))
    await cached(env, lambda o: True, "the request cached")

    first = await work.reconcile(KEY)
    obj = await cached(env, lambda o: "issuedAt" in (o.get("status") or {}), "the first status cached")
    expires, issued = times(obj)
    assert expires - issued == 600
    assert first.requeue_after is not None
    assert first.requeue_after == issued + 480 + 5 - clock.now  # 80 % of 600 s, plus the jitter
    assert 480 <= first.requeue_after <= 487
    token = token_of(env)
    assert work.tokens_issued == 1

    # a look before the renewal point leaves the token alone, and says when to look again
    clock.now = issued + 470
    early = await work.reconcile(KEY)
    assert work.tokens_issued == 1 and token_of(env) == token
    assert early.requeue_after == issued + 485 - clock.now

    # past it (80 % less the jitter): a new token
    clock.now = issued + 476
    renewed = await work.reconcile(KEY)
    assert work.tokens_issued == 2
    assert token_of(env) != token
    # The server's copy, not the informer's: the new token may carry the same issuedAt second as the old one, so
    # the cache cannot be told to wait for it.
    new_expires, new_issued = times(env.host.get_object(SVC, "DPUServiceCredentialRequest", "ovn", NS))
    assert new_expires - new_issued == 600
    assert renewed.requeue_after == new_issued + 485 - clock.now

    # a new duration: a token of that lifetime, whenever it comes
    await env.host.apply_object(credential_request("ovn", duration="20m"))
    await cached(env, lambda o: o["spec"]["duration"] == "20m", "the new duration cached")
    await work.reconcile(KEY)
    assert work.tokens_issued == 3
    obj = await cached(env, lambda o: times(o)[0] - times(o)[1] == 1200, "a 20-minute token")
    expires, issued = times(obj)
    assert (await work.reconcile(KEY)).requeue_after == issued + 960 + 5 - clock.now


async def test_without_a_duration_the_apis_default_lifetime(env: Env) -> None:
    clock = FakeClock(time.time())
    work = env.make_work(clock=clock, jitter=lambda: 0.0)
    await env.host.apply_object(credential_request("ovn", duration=None))
    await cached(env, lambda o: True, "the request cached")
    result = await work.reconcile(KEY)
    obj = await cached(env, lambda o: "issuedAt" in (o.get("status") or {}), "the status cached")
    expires, issued = times(obj)
    assert expires - issued == 3600  # the TokenRequest default
    assert result.requeue_after == issued + 2880 - clock.now
    await work.reconcile(KEY)
    assert work.tokens_issued == 1  # without a duration, a valid token is kept
