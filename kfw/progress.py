"""How library code reports: callbacks, never prints.

The CLI renders these as rich progress bars and lines; the tracking layer forwards them to
W&B; tests collect them. Every method has a do-nothing default, so a consumer overrides only
what it shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kfw.core.cv import CVResult, FoldResult


class Callback:
    """Events of a kfw command, in the order they happen."""

    def info(self, message: str) -> None:
        """A one-line decision or fact worth showing ("using the embedded open copy")."""

    def warning(self, message: str) -> None:
        """Something the user should know that does not stop the run."""

    def cv_start(self, label: str, n_fits: int) -> None:
        """A fold loop of ``n_fits`` fits starts (``label`` names the model)."""

    def fold_end(self, fold: FoldResult) -> None:
        """One fit finished (or was restored from a checkpoint)."""

    def cv_end(self, result: CVResult) -> None:
        """The fold loop finished."""

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Free-form metrics (per-epoch losses of a network, say)."""


class Collect(Callback):
    """Keeps every message; used by tests and by callers that render afterwards."""

    def __init__(self) -> None:
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.folds: list[FoldResult] = []

    def info(self, message: str) -> None:
        self.infos.append(message)

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def fold_end(self, fold: FoldResult) -> None:
        self.folds.append(fold)


NULL = Callback()
