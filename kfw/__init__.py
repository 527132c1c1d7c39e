"""kfw: a Kaggle competition workbench built around leak-safe, persisted folds."""

__version__ = "0.1.0"
