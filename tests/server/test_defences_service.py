"""Output defences and extraction monitors in `stealml serve`, over real HTTP on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from stealml.exceptions import ConfigurationError
from stealml.server import create_app, load_settings, running
from stealml.space import FeatureSpace

MALLORY = {"Authorization": "Bearer sk-mallory-03"}
ALICE = {"Authorization": "Bearer sk-alice-0001"}


def _settings(model_files: dict[str, Path], log: Path | None, **model: Any) -> Any:
    return load_settings(None, log=log, max_batch=50, models=[
        {"name": "softmax", "path": model_files["softmax"], **model}],
        keys=[{"name": "alice", "key": "sk-alice-0001"},
              {"name": "mallory", "key": "sk-mallory-03"}])


def _line(space: FeatureSpace, n: int) -> list[dict[str, Any]]:
    """A line search: evenly spaced points between two inputs."""
    t = np.linspace(0, 1, n)
    return [{"age": 17 + 70 * v, "hours": 99 * v, "sex": "M", "work": "private"} for v in t]


def _probe(url: str, rows: list[dict[str, Any]], auth: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{url}/models/softmax/batch", json={"inputs": rows}, headers=auth,
                      timeout=30)


def test_bad_defence_settings_fail_at_load(model_files, tmp_path) -> None:
    with pytest.raises(ConfigurationError, match=r"noise .* must be >= 0"):
        _settings(model_files, None, noise=-0.5)
    with pytest.raises(ConfigurationError, match="reverse_sigmoid"):
        _settings(model_files, None, reverse_sigmoid=[1.0, -1.0])
    with pytest.raises(ConfigurationError, match="delta must be between 0 and 1"):
        _settings(model_files, None, monitor={"prada_delta": 2})
    with pytest.raises(ConfigurationError, match="needs ood_reference"):
        _settings(model_files, None, monitor={"detectors": ["ood"]})
    # k above the number of classes is known once the model is loaded: at start-up
    with pytest.raises(ConfigurationError, match="top_k is 5, but the model has only 3"):
        create_app(_settings(model_files, None, output="top-k", top_k=5))
    np.save(tmp_path / "ref.npy", np.zeros((20, 3)))
    with pytest.raises(ConfigurationError, match=r"has shape .* 7 columns"):
        create_app(_settings(model_files, None, monitor={
            "detectors": ["ood"], "ood_reference": str(tmp_path / "ref.npy")}))


def test_toml_config_with_noise_and_a_monitor(model_files, tmp_path, mixed_space) -> None:
    np.save(tmp_path / "ref.npy", mixed_space.sample_encoded(100, 0))
    config = tmp_path / "service.toml"
    config.write_text(f"""
[[models]]
name = "softmax"
path = "{model_files['softmax']}"
noise = 0.05
noise_seed = 3
rounding = 4

[models.monitor]
detectors = ["prada", "ood"]
response = "labels"
ood_reference = "ref.npy"
""")
    settings = load_settings(config)
    assert settings.models[0].monitor.ood_reference == tmp_path / "ref.npy"
    with running(settings) as url:
        rows = [dict(zip(mixed_space.names, r, strict=True)) for r in mixed_space.sample(20, 1)]
        got = [p["probabilities"] for p in _probe(url, rows, {}).json()["predictions"]]
        again = [p["probabilities"] for p in _probe(url, rows, {}).json()["predictions"]]
    p = np.array([[d[str(c)] for c in range(3)] for d in got])
    assert np.all(p >= 0) and np.allclose(p.sum(axis=1), 1.0, atol=2e-4)
    assert got == again  # seeded by the query: asking again does not average the noise away


@pytest.mark.parametrize("response", ["block", "labels", "noise"])
def test_flagged_key_gets_the_configured_response(model_files, tmp_path, mixed_space,
                                                  response) -> None:
    settings = _settings(model_files, tmp_path / "log.sqlite", monitor={
        "detectors": ["prada"], "prada_min_samples": 20, "response": response,
        "noise": 0.1})
    line = _line(mixed_space, 120)
    with running(settings) as url:
        before = _probe(url, line[:10], MALLORY)  # fewer distances than the test needs
        first = _probe(url, line[10:40], MALLORY)  # the flag is raised within this request
        after = _probe(url, line[40:50], MALLORY)
        honest = _probe(url, line[:3], ALICE)
    assert honest.status_code == 200 and honest.json()["predictions"][0]["probabilities"]
    assert before.status_code == 200 and before.json()["predictions"][0]["probabilities"]
    if response == "block":
        for refused in (first, after):  # the flagging request is refused as a whole
            assert refused.status_code == 403
            error = refused.json()["error"]
            assert error["code"] == "extraction_suspected"
            assert "prada monitor flagged it" in error["message"]
        assert "of this request of 30" in first.json()["error"]["message"]
        return
    for got, rows in ((first, line[10:40]), (after, line[40:50])):
        # answered as a flagged client's from the flagging request's first row on
        assert got.status_code == 200
        preds = got.json()["predictions"]
        if response == "labels":
            assert all(p.get("probabilities") is None for p in preds)
        else:
            p = np.array([[d["probabilities"][str(c)] for c in range(3)] for d in preds])
            assert np.allclose(p.sum(axis=1), 1.0)
            clean = _probe_clean(model_files, rows, mixed_space)
            assert np.mean(np.abs(p - clean)) > 0.01


def _probe_clean(model_files: dict[str, Path], rows: list[dict[str, Any]],
                 space: FeatureSpace) -> np.ndarray:
    from stealml.modelio import load_model

    return load_model(model_files["softmax"]).model.predict_proba(space.encode(
        space.as_raw(rows)))


def test_a_flag_survives_a_restart(model_files, tmp_path, mixed_space) -> None:
    settings = _settings(model_files, tmp_path / "log.sqlite", monitor={
        "detectors": ["prada"], "prada_min_samples": 20, "response": "block"})
    line = _line(mixed_space, 60)
    with running(settings) as url:
        assert _probe(url, line[:20], MALLORY).status_code == 200
        # the flag is raised within this request, which is refused: its rows are not
        # logged, but the flag is
        assert _probe(url, line[20:45], MALLORY).status_code == 403
        assert _probe(url, line[45:], MALLORY).status_code == 403
    with running(settings) as url:  # a fresh process state, the same log
        assert _probe(url, line[45:], MALLORY).status_code == 403
        assert _probe(url, line[:2], ALICE).status_code == 200
    from stealml.server.store import PredictionLog

    log = PredictionLog(tmp_path / "log.sqlite")
    try:
        assert len(log.predictions("mallory")) == 20  # the refused rows were not answered
        (flag,) = log.flags()
        assert flag["key"] == "mallory" and flag["detector"] == "prada"
        assert 20 < flag["at_query"] <= 45
    finally:
        log.close()


def test_one_large_request_cannot_outrun_the_monitor(model_files, tmp_path,
                                                     mixed_space) -> None:
    """The monitor sees a request's rows before they are answered: a whole line search
    sent as one request of 50 is refused, not answered in full before the flag."""
    settings = _settings(model_files, tmp_path / "log.sqlite", monitor={
        "detectors": ["prada"], "prada_min_samples": 20, "response": "block"})
    with running(settings) as url:
        whole = _probe(url, _line(mixed_space, 50), MALLORY)
        honest = _probe(url, _line(mixed_space, 50)[:3], ALICE)
    assert whole.status_code == 403 and whole.json()["error"]["code"] == "extraction_suspected"
    assert honest.status_code == 200
