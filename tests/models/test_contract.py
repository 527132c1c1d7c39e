"""Every registered model keeps the scikit-learn contract the fold loop relies on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from kfw.core.registry import entries, estimator_class, make_estimator
from kfw.errors import ConfigError
from models._tabular import WeightedModel

# small settings so the contract suite stays fast; the defaults are what runs use
FAST = {
    "lgbm": {"n_estimators": 30, "num_leaves": 7},
    "xgb": {"n_estimators": 30, "max_depth": 3},
    "catboost": {"iterations": 40, "depth": 3},
    "rf": {"n_estimators": 20},
    "extratrees": {"n_estimators": 20},
    "scratch-rf": {"n_estimators": 10},
    "scratch-gbm": {"n_estimators": 30},
    "scratch-hgb": {"max_iter": 30},
    "scratch-tree": {"max_depth": 6},
    "scratch-mlp": {"hidden_layer_sizes": (16,), "max_iter": 40, "learning_rate_init": 0.01},
    "torch-mlp": {"hidden_layer_sizes": (32,), "epochs": 15, "batch_size": 32, "lr": 0.01},
    "torch-cnn": {"channels": (4, 8), "hidden": 16, "epochs": 10, "batch_size": 32},
    "torch-resnet": {"widths": (8, 16), "blocks": 1, "epochs": 10, "batch_size": 32},
    # sklearn's checks tune alpha for its own Lasso / ElasticNet by name; ours need it set
    "scratch-lasso": {"alpha": 0.01},
    "scratch-elasticnet": {"alpha": 0.01},
}

CASES = [(e.name, task) for e in entries() for task in e.tasks if task != "multiclass"]


def _data(task: str, n: int = 160, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "c": pd.Categorical(rng.choice(["u", "v", "w"], size=n)),
        }
    )
    X.loc[rng.random(n) < 0.1, "b"] = np.nan
    signal = X["a"].to_numpy() + (X["c"] == "u").to_numpy()
    y = signal + 0.3 * rng.normal(size=n) if task == "regression" else (signal > 0.3).astype(int)
    return X, y


def _model(name: str, task: str, seed: int = 0):
    return make_estimator(name, task, FAST.get(name, {}), random_state=seed, n_jobs=1)


def _predict(model, X, task):
    return model.predict(X) if task == "regression" else model.predict_proba(X)


@pytest.mark.parametrize(("name", "task"), CASES)
def test_clone_refit_unfitted_and_determinism(name, task):
    X, y = _data(task)
    model = _model(name, task)
    with pytest.raises(NotFittedError):
        model.predict(X)
    first = _predict(clone(model).fit(X, y), X, task)
    # a second fit resets: fit on other data, then on the first data again
    refit = clone(model).fit(*_data(task, seed=1))
    refit.fit(X, y)
    np.testing.assert_allclose(_predict(refit, X, task), first, rtol=1e-10, atol=1e-12)
    # same seed, same predictions; the params survive a clone
    again = clone(model)
    plain = lambda est: {k: v for k, v in est.get_params().items() if not hasattr(v, "get_params")}  # noqa: E731
    assert plain(again) == plain(model)
    np.testing.assert_array_equal(_predict(again.fit(X, y), X, task), first)
    if task != "regression":
        assert set(model.fit(X, y).predict(X)) <= {0, 1}
        np.testing.assert_allclose(first.sum(axis=1), 1.0)


@pytest.mark.parametrize(("name", "task"), CASES)
def test_learns_the_signal(name, task):
    X, y = _data(task, n=400)
    Xt, yt = _data(task, n=400, seed=5)
    model = _model(name, task).fit(X, y)
    if task == "regression":
        assert np.corrcoef(model.predict(Xt), yt)[0, 1] > 0.7
    else:
        assert np.mean(model.predict(Xt) == yt) > 0.75


@pytest.mark.parametrize("name", ["lgbm", "xgb", "catboost"])
def test_gbms_stop_early_on_the_eval_set_and_record_it(name):
    X, y = _data("regression", n=300)
    model = make_estimator(name, "regression", {}, n_jobs=1)
    model.fit(X[:200], y[:200], eval_set=(X[200:], y[200:]))
    cap = model.get_params().get("n_estimators", model.get_params().get("iterations"))
    assert 1 <= model.best_iteration_ < cap
    # without an eval set, or with early stopping off, every round is used and none is "best"
    small = {"n_estimators": 20} if name != "catboost" else {"iterations": 20}
    assert make_estimator(name, "regression", small, n_jobs=1).fit(X, y).best_iteration_ is None
    off = make_estimator(name, "regression", {**small, "early_stopping_rounds": 0}, n_jobs=1)
    assert off.fit(X[:200], y[:200], eval_set=(X[200:], y[200:])).best_iteration_ is None


def test_unknown_parameter_and_task_are_refused():
    with pytest.raises(ConfigError, match="learnin_rate"):
        make_estimator("lgbm", "regression", {"learnin_rate": 0.1})
    with pytest.raises(ConfigError, match="does not fit a binary task"):
        make_estimator("ridge", "binary")
    with pytest.raises(ConfigError, match="unknown model 'lgb'"):
        make_estimator("lgb", "regression")


def _all_estimators():
    for name, task in CASES:
        yield _model(name, task)


# scikit-learn's own estimator checks on plain numeric arrays; each exemption says why
EXPECTED_FAILURES = {
    # the wrappers without models._tabular.WeightedModel (scratch models, torch networks)
    "check_sample_weight_equivalence_on_dense_data": "kfw wrappers take no sample_weight",
    "check_sample_weights_not_an_array": "kfw wrappers take no sample_weight",
    "check_sample_weights_list": "kfw wrappers take no sample_weight",
    "check_sample_weights_shape": "kfw wrappers take no sample_weight",
    "check_sample_weights_not_overwritten": "kfw wrappers take no sample_weight",
    "check_sample_weights_invariance": "kfw wrappers take no sample_weight",
    "check_class_weight_classifiers": "kfw wrappers take no class_weight",
}


def _expected(estimator):
    failures = dict(EXPECTED_FAILURES)
    if isinstance(estimator, WeightedModel):  # these take sample_weight: the checks run
        failures = {k: v for k, v in failures.items() if "sample_weight" not in v}
        failures["check_sample_weight_equivalence_on_dense_data"] = (
            "weights scale the loss, not the unweighted design matrix (median, scaling), "
            "bagging's draws or float32 histograms: not exactly repeated rows"
        )
    if type(estimator).__name__ == "CatBoostRegressor":
        failures["check_fit2d_1sample"] = (
            "CatBoost refuses a single training row with its own CatBoostError"
        )
    if _is_torch(estimator):
        failures["check_methods_subset_invariance"] = (
            "float32 matmuls and convolutions on the CPU block by batch size: rows agree to "
            "~2e-7, not 1e-7 (test_torch_predictions_do_not_depend_on_the_batch checks 1e-6)"
        )
    return failures


def _is_torch(estimator) -> bool:
    return type(estimator).__name__.startswith("TorchTabular")


TORCH_CASES = [c for c in CASES if c[0].startswith("torch-")]


@pytest.mark.parametrize(("name", "task"), TORCH_CASES)
def test_torch_predictions_do_not_depend_on_the_batch(name, task):
    # scikit-learn's subset-invariance check at float32's precision: a row's prediction is
    # the same whether it is scored alone, in a small batch or with the whole frame
    X, y = _data(task)
    model = _model(name, task).fit(X, y)
    full = _predict(model, X, task)
    by_batch = np.concatenate(
        [_predict(model, X.iloc[i : i + 7], task) for i in range(0, len(X), 7)]
    )
    alone = np.concatenate([_predict(model, X.iloc[[i]], task) for i in range(0, 40)])
    assert full.dtype == by_batch.dtype
    np.testing.assert_allclose(by_batch, full, rtol=0, atol=1e-6)
    np.testing.assert_allclose(alone, full[:40], rtol=0, atol=1e-6)


@parametrize_with_checks(list(_all_estimators()), expected_failed_checks=_expected)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_every_registered_class_is_importable():
    for e in entries():
        for task in e.tasks:
            assert estimator_class(e.name, task).__name__
