"""The service's state (models, keys, log) and what every prediction route shares:
authentication, quotas, idempotent retries, logging.

:class:`Service` is built once by :func:`~stealml.server.app.create_app` from its
settings and reached by the routes through FastAPI dependencies, never a module global.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from stealml.policies import ApiPolicy
from stealml.server.errors import ApiError
from stealml.server.models import Outcome, ServedModel
from stealml.server.settings import ApiKey, ServiceSettings
from stealml.server.store import PredictionLog, body_digest

__all__ = ["Caller", "Service", "caller", "get_service"]

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    """Who is asking: the key's name (as logged) and its quota."""

    name: str
    quota: int | None


class Service:
    """Models, API keys and the prediction log of one running service."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.models = {m.name: ServedModel(m) for m in settings.models}
        self._keys = list(settings.keys)
        self.log = PredictionLog(settings.log, settings.log_sync)
        self._replay_monitors()

    def model(self, name: str) -> ServedModel:
        try:
            return self.models[name]
        except KeyError:
            raise ApiError(404, "unknown_model",
                           f"no model {name!r}; this service has: "
                           f"{', '.join(sorted(self.models)) or 'none'}") from None

    def authenticate(self, key: str | None) -> Caller:
        """401 without a key, 403 with a wrong one (when the service has keys at all)."""
        if not self._keys:
            return Caller(ANONYMOUS, None)
        if not key:
            raise ApiError(401, "missing_api_key",
                           "this service needs an API key: send 'Authorization: Bearer KEY' "
                           "or 'X-API-Key: KEY'", {"WWW-Authenticate": "Bearer"})
        match: ApiKey | None = None
        for k in self._keys:  # compare with every key, in constant time
            if hmac.compare_digest(k.key.encode(), key.encode()):
                match = k
        if match is None:
            raise ApiError(403, "invalid_api_key", "this API key is not valid")
        return Caller(match.name, match.quota)

    def answer(self, who: Caller, served: ServedModel, request_id: str | None, route: str,
               body: Any, inputs: list[Any], run: Callable[[ApiPolicy], Outcome],
               respond: Callable[[Outcome], dict[str, Any]]) -> dict[str, Any]:
        """Answer a batch once: replay a retried request, check the quota and the
        extraction monitor, run the model under the client's policy, show the rows to
        the monitor in order, log every prediction, and return the response (the stored
        one for a retry).

        The monitor sees a request's rows before they are answered, one by one: a client
        flagged by one of them (not the last) is not answered as an unflagged client for
        the rest. With ``block`` the request is refused (403; the rows before the flag
        are not answered either), with ``labels`` or ``noise`` the whole request is
        answered as a flagged client's. Otherwise one request of a thousand uniform rows
        would be answered in full before any flag. Each flag is logged before the answer,
        so that it survives a restart even when its request was refused."""
        digest = body_digest(route, body)
        stored = self.log.replay(who.name, request_id, digest)
        if stored is not None:
            return stored
        self.log.check_quota(who.name, who.quota, len(inputs))
        monitor = served.monitor
        policy = served.policy
        if monitor is not None:
            if monitor.blocks(who.name):
                raise _blocked(monitor.flag(who.name) or {}, served.name)
            policy = monitor.policy_for(who.name, policy)
        outcome = run(policy)
        if monitor is not None and not monitor.flagged(who.name):
            hit = monitor.observe(who.name, served.encoded(inputs), outcome.labels)
            if hit is not None:
                flag = monitor.flag(who.name) or {}
                stat = flag.get("statistic")
                self.log.record_flag(who.name, served.name, str(flag.get("detector")),
                                     int(flag.get("at_query", 0)),
                                     None if stat is None else float(stat))
                if hit + 1 < len(inputs) and monitor.response == "block":
                    raise _blocked(flag, served.name, f" (row {hit + 1} of this request of "
                                                      f"{len(inputs)}); this request is refused")
                if hit + 1 < len(inputs) and monitor.response != "log":
                    outcome = run(monitor.flagged_policy(served.policy))
        response = respond(outcome)
        records = outcome.records(served.classes)
        return self.log.commit(who.name, who.quota, served.name, request_id, digest,
                               inputs, records, served.policy.price, response)

    def _replay_monitors(self) -> None:
        """Rebuild each monitor's records from the log, then its logged flags (those of
        refused requests are not in the predictions): flags survive a restart."""
        monitored = {n: m for n, m in self.models.items() if m.monitor is not None}
        if not monitored:
            return
        for p in self.log.predictions():
            served = monitored.get(p["model"])
            if served is not None and served.monitor is not None:
                served.monitor.observe(p["key"], served.encoded([p["input"]]),
                                       [p["output"].get("label")])
        for f in self.log.flags():
            served = monitored.get(f["model"])
            if served is not None and served.monitor is not None and any(
                    d.name == f["detector"] for d in served.monitor.detectors):
                served.monitor.restore(f["key"], f["detector"], f["at_query"],
                                       f["statistic"])


def _blocked(flag: dict[str, Any], model: str, detail: str = "") -> ApiError:
    """The 403 a blocked key gets."""
    return ApiError(403, "extraction_suspected",
                    f"this key is blocked: the {flag.get('detector')} monitor flagged it as "
                    f"extracting model {model!r} after {flag.get('at_query')} queries{detail}")


async def get_service(request: Request) -> Service:
    """The running service (a FastAPI dependency; async, so that FastAPI runs it on the
    event loop instead of sending it to its thread pool)."""
    service: Service = request.app.state.service
    return service


async def caller(service: Annotated[Service, Depends(get_service)],
                 authorization: Annotated[str | None, Header()] = None,
                 x_api_key: Annotated[str | None, Header()] = None) -> Caller:
    """The authenticated caller (a FastAPI dependency; async: it only compares keys)."""
    key = x_api_key
    if authorization:
        scheme, _, token = authorization.partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else authorization.strip()
    return service.authenticate(key)
