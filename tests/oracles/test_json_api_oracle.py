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


def test_a_json_api_of_named_rows_gets_valid_rows_and_one_of_encoded_rows_any(
        mixed_space, binary_logreg) -> None:
    """Named (raw) rows: a categorical feature takes one of its values, so equation
    solving switches categories (exact on every valid row); encoded rows take any
    model-space vector, and the attack steps one-hot columns as on a local target."""
    from stealml.attacks.equations.queries import row_rank

    app = FastAPI()

    @app.post("/named")
    def named(body: dict[str, Any]) -> dict[str, Any]:  # raw values only, as a real API
        X = mixed_space.encode(body["instances"], allow_missing=False)
        return {"predictions": [{"label": int(y), "probabilities": p.tolist()} for y, p in
                            zip(binary_logreg.predict(X), binary_logreg.predict_proba(X),
                                strict=True)]}

    @app.post("/encoded")
    def encoded(body: dict[str, Any]) -> dict[str, Any]:
        P = binary_logreg.predict_proba(np.asarray(body["instances"], dtype=float))
        return {"predictions": [{"label": int(np.argmax(p)), "probabilities": p.tolist()}
                            for p in P]}

    with running(app) as url:
        named_oracle = JsonApiOracle(url, mixed_space, JsonMapping("/named"), classes=[0, 1])
        encoded_oracle = JsonApiOracle(url, mixed_space, JsonMapping("/encoded",
                                                                     rows="encoded"),
                                       classes=[0, 1])
        assert named_oracle.raw_rows and not encoded_oracle.raw_rows
        on_named = EquationSolving(random_state=0).run(named_oracle)
        on_encoded = EquationSolving(random_state=0).run(encoded_oracle)
    assert on_named.complete and on_named.queries == row_rank(mixed_space)
    X = mixed_space.sample_encoded(1000, 3)
    np.testing.assert_allclose(on_named.model.predict_proba(X), binary_logreg.predict_proba(X),
                               rtol=0, atol=1e-9)
    assert on_encoded.complete and on_encoded.queries == mixed_space.n_encoded + 1
    np.testing.assert_allclose(on_encoded.model.coef_, binary_logreg.coef_, rtol=0, atol=1e-9)
