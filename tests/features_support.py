"""The feature function the feature-pipeline tests register (``%skew``, ``%serve`` on raw input)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_features(raw: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age_decade": raw["age"] // 10,
            "log_income": np.log1p(raw["income"]),
            "is_pro": (raw["plan"] == "pro").astype(int),
        },
        index=raw.index,
    )
