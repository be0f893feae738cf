"""The simplest real recommender: most-interacted items. It is the registry's round-trip model
until the deep model exists, and stays as a baseline."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from rtrec.schema.events import ITEM_ID

K = "k"
ITEMS = "items"


def most_popular(events: Iterable[Mapping[str, Any]], limit: int = 100) -> list[str]:
    """Item ids by interaction count, most frequent first (ties by item id, for determinism)."""
    counts = Counter(event[ITEM_ID] for event in events)
    return [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]


def popularity_python_model(ranking: list[str]) -> Any:
    """An ``mlflow.pyfunc.PythonModel`` answering a frame with column ``k`` with the top-k items."""
    import pandas as pd
    from mlflow.pyfunc.model import PythonModel

    class PopularityModel(PythonModel):  # type: ignore[misc]
        def __init__(self, ranking: list[str]) -> None:
            self.ranking = ranking

        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
            return pd.DataFrame({ITEMS: [",".join(self.ranking[: int(k)]) for k in model_input[K]]})

    return PopularityModel(ranking)
