"""Library estimators behind kfw's contract, and the registry entries naming them."""

from models import registry as _registry  # noqa: F401  (registers the names)
