"""schemathesis against the service's own OpenAPI schema: no request makes it fail (500).

Generated requests are steered half of the time towards the real models (a real model
name; generated values put under real feature names), so the fuzzing reaches the
encoding, extraction, policy and logging code and not only the routing.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from stealml.server import ServiceSettings, create_app

ROW = {"age": 39, "hours": 40.5, "sex": "M", "work": "private"}
MODELS = ["softmax", "amazon", "bigml"]


@pytest.mark.slow
def test_no_request_makes_the_service_fail(settings: ServiceSettings,
                                           keys: dict[str, str]) -> None:
    app = create_app(settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    for operation in operations:
        _fuzz(operation, keys["bob"])
    assert app.state.service.log.usage("bob") > 0  # the fuzzing reached the models


def _steer(values: Any) -> Any:
    if not isinstance(values, dict):
        return values
    return {**ROW, **dict(zip(ROW, values.values(), strict=False))}


def _fuzz(operation: schemathesis.APIOperation, key: str) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        n = len(repr(case.body)) + len(repr(case.path_parameters))
        if n % 2:
            if case.path_parameters and "name" in case.path_parameters:
                case.path_parameters["name"] = MODELS[n % 3]
            if isinstance(case.body, dict) and "input" in case.body:
                case.body["input"] = _steer(case.body["input"])
            if isinstance(case.body, dict) and isinstance(case.body.get("inputs"), list):
                case.body["inputs"] = [_steer(v) for v in case.body["inputs"]]
        headers = {"X-API-Key": key} if n % 5 else None
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    check()
