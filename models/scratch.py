"""kfw's from-scratch NumPy estimators (``scratch_models``) in the fold loop.

The scratch models take numeric arrays, as scikit-learn's do; here they sit behind the same
design matrix as kfw's scikit-learn models (:func:`models._design.design`: categories one-hot
or ordinal-coded, numbers median-imputed and standardised, all fitted on the training part),
so ``kfw cv titanic --model scratch-gbm`` runs on the same folds as LightGBM.

Besides the estimator's own parameters a roster entry may set ``scaler`` (as the linear
wrappers spell it): ``"standard"`` (the default), ``"robust"``, or ``"none"`` for features
already on one scale (pixels / 255, which per-column standardising would blow up wherever a
pixel is almost always blank).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, clone
from sklearn.pipeline import make_pipeline

from kfw.errors import ConfigError
from models._design import design
from models._tabular import TabularModel


class _Prepared(TabularModel):
    """A numeric-only estimator behind the design matrix (a meta-estimator, like Pipeline).

    Parameters
    ----------
    estimator : estimator
        Cloned and fitted on the design matrix.
    one_hot : bool
        One-hot categories (linear models, neighbours, SVMs) or code them as integers (trees).
    scale : {"standard", "robust", "none"}
        Numbers are median-imputed and scaled (trees do not care; the others need it), or
        only imputed (``"none"``).
    """

    def __init__(
        self,
        estimator: Any = None,
        one_hot: bool = True,
        scale: str = "standard",
        min_frequency: int | None = 3,
    ) -> None:
        self.estimator = estimator
        self.one_hot = one_hot
        self.scale = scale
        self.min_frequency = min_frequency

    def _fit_model(self, X: Any, y: np.ndarray, eval_set: Any) -> Any:
        del eval_set  # the scratch models have no early stopping
        matrix = design(X, one_hot=self.one_hot, scale=self.scale, min_frequency=self.min_frequency)
        pipe = make_pipeline(matrix, clone(self.estimator)).fit(X, y)
        inner = pipe[-1]
        if hasattr(inner, "feature_importances_"):
            self.feature_importances_ = inner.feature_importances_
            self.importance_names_ = pipe[0].get_feature_names_out()
        return pipe

    def _predict_raw(self, X: Any) -> np.ndarray:
        if not self._is_classifier() or hasattr(self.model_[-1], "predict_proba"):
            return super()._predict_raw(X)
        # an SVM has margins, not probabilities: squash them (ordered like probabilities, not
        # calibrated), so thresholds and ranking metrics read them as the fold loop expects
        margin = np.asarray(self.model_.decision_function(X), dtype=np.float64)
        if margin.ndim == 1:
            return 1.0 / (1.0 + np.exp(-margin))  # (n_samples,)
        z = np.exp(margin - margin.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)  # (n_samples, n_classes)


class PreparedRegressor(RegressorMixin, _Prepared):
    """A scratch regressor in the fold loop."""


class PreparedClassifier(ClassifierMixin, _Prepared):
    """A scratch classifier in the fold loop."""


def _factory(path: str, classifier: bool, one_hot: bool) -> Any:
    def make(params: dict[str, Any], random_state: int = 0, n_jobs: int = 1) -> Any:
        module, name = path.split(":")
        cls = getattr(importlib.import_module(module), name)
        params = dict(params)
        scale = params.pop("scaler", "standard")  # the design matrix's, not the estimator's
        if scale not in SCALERS:
            raise ConfigError(f"scaler must be one of {', '.join(SCALERS)}, got {scale!r}")
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(params) - accepted)
        if unknown:
            takes = ", ".join(sorted([*accepted, "scaler"]))
            raise ConfigError(f"{name} has no parameter {unknown[0]!r} (it takes: {takes})")
        if "random_state" in accepted:
            params = {"random_state": random_state, **params}
        wrapper = PreparedClassifier if classifier else PreparedRegressor
        return wrapper(cls(**params), one_hot=one_hot, scale=scale)

    make.__name__ = f"make_{path.rsplit(':', 1)[1]}"
    return make


SCALERS = ("standard", "robust", "none")

# name -> (regressor class, classifier class, one-hot?)
SCRATCH = {
    "scratch-linear": ("scratch_models.linear_regression:LinearRegression", None, True),
    "scratch-ridge": ("scratch_models.ridge:Ridge", None, True),
    "scratch-lasso": ("scratch_models.coordinate_descent:Lasso", None, True),
    "scratch-elasticnet": ("scratch_models.coordinate_descent:ElasticNet", None, True),
    "scratch-logreg": (None, "scratch_models.logistic:LogisticRegression", True),
    "scratch-tree": (
        "scratch_models.tree:DecisionTreeRegressor",
        "scratch_models.tree:DecisionTreeClassifier",
        False,
    ),
    "scratch-rf": (
        "scratch_models.forest:RandomForestRegressor",
        "scratch_models.forest:RandomForestClassifier",
        False,
    ),
    "scratch-gbm": (
        "scratch_models.gradient_boosting:GradientBoostingRegressor",
        "scratch_models.gradient_boosting:GradientBoostingClassifier",
        False,
    ),
    "scratch-hgb": (
        "scratch_models.hist_gradient_boosting:HistGradientBoostingRegressor",
        "scratch_models.hist_gradient_boosting:HistGradientBoostingClassifier",
        False,
    ),
    "scratch-knn": (
        "scratch_models.neighbors:KNeighborsRegressor",
        "scratch_models.neighbors:KNeighborsClassifier",
        True,
    ),
    "scratch-svc": (None, "scratch_models.svm:SVC", True),
    "scratch-mlp": (None, "scratch_models.mlp:MLPClassifier", True),
}

# module-level factories, so the registry can name them as "models.scratch:<attribute>"
for _name, (_reg, _clf, _one_hot) in SCRATCH.items():
    _key = _name.replace("-", "_")
    if _reg:
        globals()[f"{_key}_regressor"] = _factory(_reg, False, _one_hot)
    if _clf:
        globals()[f"{_key}_classifier"] = _factory(_clf, True, _one_hot)
