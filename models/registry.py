"""The models kfw ships, registered by name; classes are imported only when a run uses them."""

from kfw.registry import ModelEntry, register

for entry in [
    ModelEntry(
        "lgbm",
        "LightGBM, native categoricals, early stopping",
        "models.lgbm:LGBMRegressor",
        "models.lgbm:LGBMClassifier",
    ),
    ModelEntry(
        "xgb",
        "XGBoost hist, categorical support, early stopping",
        "models.xgb:XGBRegressor",
        "models.xgb:XGBClassifier",
    ),
    ModelEntry(
        "catboost",
        "CatBoost, cat_features, early stopping",
        "models.cat:CatBoostRegressor",
        "models.cat:CatBoostClassifier",
    ),
    ModelEntry("ridge", "ridge regression on scaled, one-hot features", "models.linear:Ridge"),
    ModelEntry("lasso", "lasso on scaled, one-hot features", "models.linear:Lasso"),
    ModelEntry("elasticnet", "elastic net on scaled, one-hot features", "models.linear:ElasticNet"),
    ModelEntry(
        "logreg",
        "logistic regression on scaled, one-hot features",
        classifier="models.linear:LogisticRegression",
    ),
    ModelEntry(
        "rf",
        "random forest",
        "models.forest:RandomForestRegressor",
        "models.forest:RandomForestClassifier",
    ),
    ModelEntry(
        "extratrees",
        "extremely randomised trees",
        "models.forest:ExtraTreesRegressor",
        "models.forest:ExtraTreesClassifier",
    ),
]:
    register(entry)
