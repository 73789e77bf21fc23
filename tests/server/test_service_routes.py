"""The service's routes, through the real app (in-process ASGI client)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest

from stealml.modelio import load_model
from stealml.models.tree_service import wilson_lower_bound
from stealml.server import ServiceSettings, create_app
from stealml.server.store import PredictionLog

with warnings.catch_warnings():  # starlette asks for httpx2, which is not needed here
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROW = {"age": 39, "hours": 40.5, "sex": "M", "work": "private"}
AUTH = {"Authorization": "Bearer sk-bob-00002"}
ALICE = "sk-alice-0001"


@pytest.fixture
def client(settings: ServiceSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def test_health_metadata_and_openapi(client: TestClient, mixed_space) -> None:
    assert client.get("/health").json() == {"status": "ok", "models": 3}
    meta = client.get("/models/softmax").json()
    assert meta["features"] == mixed_space.to_dict()["features"]
    assert meta["classes"] == [0, 1, 2] and meta["price"] == 0.0001
    assert meta["output"] == "probabilities" and meta["incomplete"] == "reject"
    assert "bins" not in str(meta)
    assert client.get("/models").json()["max_batch"] == 50
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/models/{name}/predict", "/models/{name}/batch",
            "/v2/models/{name}/infer"} <= set(paths)


def test_answers_match_the_model(client: TestClient, model_files, mixed_space) -> None:
    model = load_model(model_files["softmax"]).model
    rows = [dict(zip(mixed_space.names, r, strict=True)) for r in mixed_space.sample(5, 0)]
    out = client.post("/models/softmax/batch", json={"inputs": rows}, headers=AUTH).json()
    expect = model.predict_proba(mixed_space.encode(rows))
    got = np.array([[p["probabilities"][str(c)] for c in range(3)]
                    for p in out["predictions"]])
    assert np.array_equal(got, expect)
    assert out["cost"] == pytest.approx(0.0005)
    one = client.post("/models/softmax/predict", json={"input": rows[0]}, headers=AUTH)
    alone = model.predict_proba(mixed_space.encode(rows[:1]))[0]
    assert list(one.json()["prediction"]["probabilities"].values()) == list(alone)


def test_auth_quota_and_malformed_input_have_json_errors(client: TestClient) -> None:
    body = {"input": ROW}
    r = client.post("/models/softmax/predict", json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    r = client.post("/models/softmax/predict", json=body, headers={"X-API-Key": "sk-wrong-00"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_api_key"
    alice = {"X-API-Key": ALICE}
    r = client.post("/models/softmax/batch", json={"inputs": [ROW] * 15}, headers=alice)
    assert r.status_code == 200
    r = client.post("/models/softmax/batch", json={"inputs": [ROW] * 6}, headers=alice)
    assert r.status_code == 429 and "5 of its quota of 20" in r.json()["error"]["message"]
    for bad in ({"input": {**ROW, "sex": "X"}}, {"input": {**ROW, "height": 2}},
                {"input": {"age": 39}}, {"input": {**ROW, "age": "old"}}, {"inputs": []},
                {"input": [1, 2]}, {}, {"input": {**ROW, "age": 1e308}}):
        r = client.post("/models/softmax/predict", json=bad, headers=AUTH)
        assert r.status_code == 422, bad
        assert set(r.json()["error"]) == {"code", "message"}
    r = client.post("/models/softmax/batch", json={"inputs": [ROW] * 51}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["code"] == "batch_too_large"
    assert client.get("/models/nope").status_code == 404


def test_policies_amazon_and_bigml(client: TestClient, model_files, mixed_space) -> None:
    partial = {"age": 39, "sex": "M"}
    amazon = client.post("/models/amazon/predict", json={"input": partial}, headers=AUTH)
    model = load_model(model_files["binary"]).model
    Z = np.nan_to_num(mixed_space.encode([partial]), nan=0.0)
    p = model.predict_proba(Z)[0]
    shown = amazon.json()["prediction"]["probabilities"]
    assert [shown["0"], shown["1"]] == [float(f"{v:.16g}") for v in p]
    tree = load_model(model_files["tree"]).model
    root = mixed_space.encoded_names[tree.tree_.feature[0]].split("=")[0]
    bigml = client.post("/models/bigml/predict", json={"input": {k: v for k, v in ROW.items()
                                                                 if k != root}}, headers=AUTH)
    pred = bigml.json()["prediction"]
    value, n = tree.tree_.value[0, 0], tree.tree_.n_node_samples[0]
    root_dist = value / value.sum()
    assert [pred["probabilities"][str(c)] for c in range(3)] == list(np.round(root_dist, 5))
    assert pred["confidence"] == round(float(wilson_lower_bound(root_dist.max(), n)), 5)
    assert root in pred["fields"] and pred["label"] == int(root_dist.argmax())
    full = client.post("/models/bigml/predict", json={"input": ROW}, headers=AUTH).json()
    assert full["prediction"]["label"] == int(tree.predict(mixed_space.encode([ROW]))[0])
    assert client.get("/models/bigml").json()["confidence"] is True


def test_a_retry_is_answered_from_the_log_and_not_charged(client: TestClient,
                                                           settings) -> None:
    alice = {"X-API-Key": ALICE, "Idempotency-Key": "req-1"}
    first = client.post("/models/softmax/batch", json={"inputs": [ROW] * 3}, headers=alice)
    again = client.post("/models/softmax/batch", json={"inputs": [ROW] * 3}, headers=alice)
    assert first.json() == again.json()
    other = client.post("/models/softmax/batch", json={"inputs": [ROW] * 2}, headers=alice)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_conflict"
    assert client.app.state.service.log.usage("alice") == 3  # type: ignore[attr-defined]


def test_the_log_is_durable(settings: ServiceSettings) -> None:
    with TestClient(create_app(settings)) as c:
        c.post("/models/softmax/batch", json={"inputs": [ROW] * 4}, headers=AUTH)
    log = PredictionLog(settings.log)
    rows = log.predictions("bob")
    assert len(rows) == 4 and rows[0]["input"] == ROW and rows[0]["model"] == "softmax"
    assert log.usage("bob") == 4


def test_open_inference_protocol_routes(client: TestClient, model_files, mixed_space) -> None:
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/softmax/ready").json()["ready"] is True
    meta = client.get("/v2/models/softmax").json()
    assert meta["inputs"][0]["shape"] == [-1, 7]
    X = mixed_space.sample_encoded(4, 1)
    body = {"inputs": [{"name": "x", "shape": [4, 7], "datatype": "FP64",
                        "data": X.ravel().tolist()}]}
    out = client.post("/v2/models/softmax/infer", json=body, headers=AUTH).json()
    proba = {t["name"]: t for t in out["outputs"]}["predict_proba"]
    model = load_model(model_files["softmax"]).model
    assert np.array_equal(np.reshape(proba["data"], proba["shape"]), model.predict_proba(X))
    body["inputs"][0]["shape"] = [2, 7]
    bad = client.post("/v2/models/softmax/infer", json=body, headers=AUTH)
    assert bad.status_code == 422 and isinstance(bad.json()["error"], str)
    assert client.post("/v2/models/softmax/infer", json=body).status_code == 401
