"""The models kfw ships, registered by name; classes are imported only when a run uses them.

Each entry names the regressor and/or classifier class and the Optuna search space that
``kfw tune`` samples, both living beside the wrapper in ``models/``.
"""

from kfw.core.registry import (
    ModelEntry,
    register,
    register_resampler,
    register_target_wrapper,
)

# name, description, regressor, classifier, search space, complexity (see kfw.core.registry)
_ENTRIES = [
    (
        "lgbm",
        "LightGBM, native categoricals, early stopping",
        "lgbm:LGBMRegressor",
        "lgbm:LGBMClassifier",
        "lgbm:search_space",
        4,
    ),
    (
        "xgb",
        "XGBoost hist, categorical support, early stopping",
        "xgb:XGBRegressor",
        "xgb:XGBClassifier",
        "xgb:search_space",
        4,
    ),
    (
        "catboost",
        "CatBoost, cat_features, early stopping",
        "cat:CatBoostRegressor",
        "cat:CatBoostClassifier",
        "cat:search_space",
        4,
    ),
    (
        "ridge",
        "ridge regression on scaled, one-hot features",
        "linear:Ridge",
        None,
        "linear:ridge_space",
        1,
    ),
    ("lasso", "lasso on scaled, one-hot features", "linear:Lasso", None, "linear:lasso_space", 1),
    (
        "elasticnet",
        "elastic net on scaled, one-hot features",
        "linear:ElasticNet",
        None,
        "linear:elasticnet_space",
        1,
    ),
    (
        "logreg",
        "logistic regression on scaled, one-hot features",
        None,
        "linear:LogisticRegression",
        "linear:logreg_space",
        1,
    ),
    (
        "svr",
        "support vector regression (RBF) on scaled, one-hot features",
        "kernel:SVR",
        None,
        "kernel:svr_space",
        2,
    ),
    (
        "kernel-ridge",
        "kernel ridge regression (polynomial) on scaled, one-hot features",
        "kernel:KernelRidge",
        None,
        "kernel:kernel_ridge_space",
        2,
    ),
    (
        "rf",
        "random forest",
        "forest:RandomForestRegressor",
        "forest:RandomForestClassifier",
        "forest:search_space",
        3,
    ),
    (
        "extratrees",
        "extremely randomised trees",
        "forest:ExtraTreesRegressor",
        "forest:ExtraTreesClassifier",
        "forest:search_space",
        3,
    ),
]


def _path(where: str | None) -> str | None:
    return f"models.{where}" if where else None


for name, description, regressor, classifier, space, rank in _ENTRIES:
    register(ModelEntry(name, description, _path(regressor), _path(classifier), _path(space), rank))

# the from-scratch NumPy models, behind kfw's design matrix (models/scratch.py)
_SCRATCH = {
    "scratch-linear": "linear regression (normal equation / gradient descent), from scratch",
    "scratch-ridge": "ridge regression, from scratch",
    "scratch-lasso": "lasso by coordinate descent, from scratch",
    "scratch-elasticnet": "elastic net by coordinate descent, from scratch",
    "scratch-logreg": "logistic regression (Newton / L-BFGS), from scratch",
    "scratch-tree": "CART decision tree, from scratch",
    "scratch-rf": "random forest of the scratch trees",
    "scratch-gbm": "gradient boosting of the scratch trees",
    "scratch-hgb": "second-order histogram gradient boosting, from scratch",
    "scratch-knn": "k-nearest neighbours, from scratch",
    "scratch-svc": "support vector classifier by SMO, from scratch",
    "scratch-mlp": "multilayer perceptron (batch norm, dropout, Adam), from scratch",
}
_COMPLEXITY = {
    "scratch-linear": 1, "scratch-ridge": 1, "scratch-lasso": 1, "scratch-elasticnet": 1,
    "scratch-logreg": 1, "scratch-tree": 2, "scratch-knn": 2, "scratch-svc": 2, "scratch-rf": 3,
    "scratch-gbm": 4, "scratch-hgb": 4, "scratch-mlp": 5,
}  # fmt: skip
_TASKS = {
    "scratch-logreg": "c",
    "scratch-svc": "c",
    "scratch-mlp": "c",
    "scratch-linear": "r",
    "scratch-ridge": "r",
    "scratch-lasso": "r",
    "scratch-elasticnet": "r",
}
for name, description in _SCRATCH.items():
    key = name.replace("-", "_")
    kinds = _TASKS.get(name, "rc")
    register(
        ModelEntry(
            name,
            description,
            f"models.scratch:{key}_regressor" if "r" in kinds else None,
            f"models.scratch:{key}_classifier" if "c" in kinds else None,
            complexity=_COMPLEXITY[name],
        )
    )

# torch networks (models/torch_nets.py; torch is imported only when one of them runs)
register(
    ModelEntry(
        "torch-mlp",
        "PyTorch MLP (the scratch MLP layer for layer; embeddings for categoricals)",
        "models.torch_nets:torch_mlp_regressor",
        "models.torch_nets:torch_mlp_classifier",
        complexity=5,
    )
)
register(
    ModelEntry(
        "torch-cnn",
        "PyTorch LeNet-style CNN",
        None,
        "models.torch_nets:torch_cnn_classifier",
        complexity=5,
    )
)
register(
    ModelEntry(
        "torch-resnet",
        "PyTorch ResNet (basic blocks; batchnorm / residual / augment switchable)",
        None,
        "models.torch_nets:torch_resnet_classifier",
        complexity=5,
    )
)

# resample / resample_ratio / class_weight on any classifier (models/_resample.py)
register_resampler("models._resample:Resampled")
register_target_wrapper("models._target:TransformedTarget")
