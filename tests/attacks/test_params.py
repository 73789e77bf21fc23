"""Attack parameters by name (``stealml extract --param``, a grid's ``attack_params``):
converted to the constructor's types, and refused in one line before any query."""

from __future__ import annotations

import pytest

from stealml.attacks import ATTACKS, FunctionallyEquivalent, RetrainAdaptive, TopDown
from stealml.attacks.params import attack_parameters, check_attack_params, parse_param_items
from stealml.exceptions import ConfigurationError


def test_text_values_take_the_constructors_types() -> None:
    assert check_attack_params(TopDown, {"checks": "0", "epsilon": "1e-4"}) == {
        "checks": 0, "epsilon": 1e-4}
    assert check_attack_params(FunctionallyEquivalent, {
        "hidden_layer_sizes": "64,32", "extent": "2"}) == {
        "hidden_layer_sizes": (64, 32), "extent": 2.0}
    assert check_attack_params(FunctionallyEquivalent, {"hidden_layer_sizes": "[16]"}) == {
        "hidden_layer_sizes": (16,)}
    assert check_attack_params(RetrainAdaptive, {
        "model": "rbf-svm", "ignore_probabilities": "true", "n_queries": "null"}) == {
        "model": "rbf-svm", "ignore_probabilities": True, "n_queries": None}
    # typed values (a grid's TOML) are checked as they are
    assert check_attack_params(FunctionallyEquivalent, {"hidden_layer_sizes": [16, 8]}) == {
        "hidden_layer_sizes": (16, 8)}


@pytest.mark.parametrize(("cls", "params", "message"), [
    (TopDown, {"chekcs": "0"}, "has no parameter 'chekcs'; it takes: checks=3, epsilon="),
    (TopDown, {"random_state": "1"}, "set random_state with --seed"),
    (TopDown, {"batch_size": "1"}, "set batch_size with --batch-size"),
    (TopDown, {"checks": "abc"}, "checks='abc' is not an integer"),
    (FunctionallyEquivalent, {"max_lines": "1.5"}, "max_lines='1.5' is not an integer"),
    (FunctionallyEquivalent, {"extent": "true"}, "extent='true' is not a number"),
    (FunctionallyEquivalent, {"hidden_layer_sizes": "a,b"}, "is not a list of integers or null"),
])
def test_bad_parameters_are_refused_in_one_line(cls, params, message) -> None:
    with pytest.raises(ConfigurationError, match=message) as err:
        check_attack_params(cls, params)
    assert "\n" not in str(err.value)


def test_items_parse_and_every_attack_lists_its_parameters() -> None:
    assert parse_param_items(["a=1", " b = x=y "]) == {"a": "1", "b": "x=y"}
    for bad, message in ((["a"], "write it as KEY=VALUE"), (["=1"], "write it as KEY=VALUE"),
                         (["a=1", "a=2"], "given twice")):
        with pytest.raises(ConfigurationError, match=message):
            parse_param_items(bad)
    for cls in ATTACKS.values():  # every constructor parameter has a type we can read
        params = attack_parameters(cls)
        assert "random_state" in params
        defaults = {k: p.default for k, p in params.items()
                    if k not in ("random_state", "batch_size")}
        assert check_attack_params(cls, defaults) == defaults
