"""Classical machine learning from scratch in NumPy, with scikit-learn's names and contract.

A model moves between the two libraries by changing an import::

    from scratch_models import Lasso        # from sklearn.linear_model import Lasso

Each algorithm is one file, readable top to bottom, with its objective and update rule in
the module docstring; each has an oracle test against its scikit-learn twin.
"""

from scratch_models.coordinate_descent import ElasticNet, Lasso, lasso_path
from scratch_models.forest import RandomForestClassifier, RandomForestRegressor
from scratch_models.gradient_boosting import GradientBoostingClassifier, GradientBoostingRegressor
from scratch_models.hist_gradient_boosting import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from scratch_models.kmeans import KMeans
from scratch_models.linear_regression import LinearRegression
from scratch_models.logistic import LogisticRegression
from scratch_models.mlp import MLPClassifier
from scratch_models.neighbors import KNeighborsClassifier, KNeighborsRegressor
from scratch_models.pca import PCA
from scratch_models.ridge import Ridge
from scratch_models.svm import SVC
from scratch_models.tree import DecisionTreeClassifier, DecisionTreeRegressor

__all__ = [
    "PCA",
    "SVC",
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "ElasticNet",
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
    "KMeans",
    "KNeighborsClassifier",
    "KNeighborsRegressor",
    "Lasso",
    "LinearRegression",
    "LogisticRegression",
    "MLPClassifier",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "Ridge",
    "lasso_path",
]
