"""Generic features for any tabular competition, driven by the column roles `kfw new` infers.

Row features (train + test together, no target): numeric columns as floats; categorical
columns as ``category`` of their strings (the fold loop keeps the training part's levels, so
the GBMs split on them natively); how often each categorical value occurs over train + test
(counts carry no target, so computing them on both is not a leak, and they describe the rows
the model will be applied to); date columns as year, month, day, weekday, day of year and a
running day number; text columns as their length in characters and words. Column names are
made safe for every library (letters, digits and ``_`` only).

Fitted features (inside every fold, on the training part only): out-of-fold target encoding
(:class:`kfw.core.encoding.TargetEncoder`) of the high-cardinality categoricals, which replace
the raw column: thousands of levels are more than a tree should split on natively.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from kfw.core.encoding import TargetEncoder, count_features

ROLES = ("numeric", "categorical", "high_cardinality", "text", "date")


def safe_name(name: str) -> str:
    """A column name LightGBM, XGBoost and CatBoost all accept."""
    cleaned = re.sub(r"[^0-9A-Za-z_]+", "_", str(name)).strip("_")
    return cleaned or "col"


class AutoFeatures:
    """Row and fitted features from a role -> columns map (see the module docstring).

    Parameters
    ----------
    roles : dict[str, list[str]]
        Original column names by role: numeric, categorical, high_cardinality, text, date.
    id_column : str
        Dropped from the features.
    """

    def __init__(self, roles: dict[str, list[str]], id_column: str) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(
                f"unknown column role {sorted(unknown)[0]!r} (roles: {', '.join(ROLES)})"
            )
        self.roles = {role: list(roles.get(role, [])) for role in ROLES}
        self.id_column = id_column
        names = [c for cols in self.roles.values() for c in cols]
        self.names = _unique_safe(names)

    def _col(self, name: str) -> str:
        return self.names[name]

    def row_features(self, df: pd.DataFrame) -> pd.DataFrame:
        """Target-free features of the given rows (train, test and any extra rows together)."""
        out: dict[str, Any] = {}
        for col in self.roles["numeric"]:
            out[self._col(col)] = pd.to_numeric(df[col], errors="coerce").astype(float)
        for col in self.roles["categorical"] + self.roles["high_cardinality"]:
            values = df[col]
            # category dtype: one small code per row instead of a Python string (a million
            # rows of 14 string columns are most of a Playground design's memory otherwise);
            # the levels here are train + test's, the fold loop keeps the training part's
            strings = values.astype(object).where(values.isna(), values.astype(str))
            out[self._col(col)] = strings.astype("category")
        cats = self.roles["categorical"] + self.roles["high_cardinality"]
        if cats:
            counts = count_features(df[cats], cats)
            for col in cats:
                out[f"{self._col(col)}_count"] = counts[f"{col}_count"].to_numpy()
        for col in self.roles["date"]:
            when = pd.to_datetime(df[col], errors="coerce", format="mixed")
            base = self._col(col)
            out[f"{base}_year"] = when.dt.year.astype(float)
            out[f"{base}_month"] = when.dt.month.astype(float)
            out[f"{base}_day"] = when.dt.day.astype(float)
            out[f"{base}_weekday"] = when.dt.day_of_week.astype(float)
            out[f"{base}_dayofyear"] = when.dt.day_of_year.astype(float)
            # days since the epoch: trend and recency in one number
            out[f"{base}_days"] = (when - pd.Timestamp("1970-01-01")).dt.days.astype(float)
        for col in self.roles["text"]:
            text = df[col].fillna("").astype(str)
            out[f"{self._col(col)}_chars"] = text.str.len().astype(float)
            out[f"{self._col(col)}_words"] = text.str.split().str.len().astype(float)
        return pd.DataFrame(out, index=df.index)

    def fitted_features(self) -> Any:
        """Out-of-fold target encoding of the high-cardinality columns (None when there are none)."""
        high = [self._col(c) for c in self.roles["high_cardinality"]]
        if not high:
            return None
        return TargetEncoder(columns=high, drop_original=True)


def _unique_safe(names: list[str]) -> dict[str, str]:
    seen: dict[str, int] = {}
    out = {}
    for name in names:
        base = safe_name(name)
        seen[base] = seen.get(base, 0) + 1
        out[name] = base if seen[base] == 1 else f"{base}_{seen[base]}"
    return out


def describe(roles: dict[str, list[str]]) -> str:
    """One line per role, for the generated module's docstring."""
    return "\n".join(
        f"- {role}: {', '.join(cols) if cols else '-'}" for role, cols in roles.items()
    )
