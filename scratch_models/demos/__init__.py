"""Runnable demonstrations of the from-scratch models (may use scikit-learn and matplotlib)."""
