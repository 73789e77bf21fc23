"""JsonApiOracle: a declared mapping onto two real JSON APIs of different shapes."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import FastAPI

from stealml.attacks import EquationSolving
from stealml.oracles.mapped import JsonApiOracle, JsonMapping
from stealml.server import running


def test_a_mapping_onto_stealmls_own_batch_route(service, api_key, target,
                                                 numeric_space) -> None:
    mapping = JsonMapping("/models/lr/batch", request_key="inputs")
    oracle = JsonApiOracle(service, numeric_space, mapping, classes=[0, 1], api_key=api_key,
                           batch_size=4)
    result = EquationSolving(random_state=0).run(oracle)
    np.testing.assert_allclose(result.model.coef_, target[0].coef_, rtol=0, atol=1e-9)


def test_a_tensorflow_serving_shaped_api(target, numeric_space) -> None:
    model = target[0]
    app = FastAPI()

    @app.post("/v1/models/lr:predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        return {"predictions": model.predict_proba(np.asarray(body["instances"])).tolist()}

    mapping = JsonMapping("/v1/models/lr:predict", rows="encoded", label_field=None)
    with running(app) as url:
        oracle = JsonApiOracle(url, numeric_space, mapping, classes=[0, 1])
        assert oracle.reveals == {"labels", "probabilities"}
        X = numeric_space.sample_encoded(5, 0)
        answers = oracle.query(X)
    assert np.array_equal(answers.probabilities, model.predict_proba(X))
    assert np.array_equal(answers.labels, model.predict(X))
