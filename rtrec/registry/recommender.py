"""The registered form of the sequential model: an MLflow pyfunc holding the torch module (with
its item side features), the item vocabulary and the training parameters.

Input: a DataFrame with a ``history`` column (each row the user's item ids, oldest first).
Output: per row the top ``k`` item ids (param ``k``, default 10) and their scores; ids outside
the vocabulary in a history count as the unknown item, and PAD / UNKNOWN are never returned.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlflow.pyfunc.model import PythonModel

from rtrec.models.vocabulary import FIRST_ITEM, ItemVocabulary

HISTORY = "history"
ITEMS = "items"
SCORES = "scores"
DEFAULT_K = 10


def save_artifacts(model: Any, vocabulary: ItemVocabulary, directory: Path) -> dict[str, str]:
    """Write the module and the vocabulary for ``log_model(artifacts=...)``."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / "sasrec.pt"
    torch.save({"config": asdict(model.config), "state": model.state_dict()}, weights)
    items = directory / "vocabulary.json"
    items.write_text(json.dumps(list(vocabulary.items)))
    return {"model": str(weights), "vocabulary": str(items)}


def log_recommender(
    model: Any,
    vocabulary: ItemVocabulary,
    example_history: list[str],
    registered_model_name: str,
    directory: Path,
) -> str:
    """Log ``model`` as this pyfunc in the active MLflow run (artifacts, a signature inferred
    from an example history and its output, the ``k`` parameter) and register it; returns the
    new version."""
    from types import SimpleNamespace

    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    artifacts = save_artifacts(model, vocabulary, directory)
    example = pd.DataFrame({HISTORY: [example_history]})
    recommender = SasRecRecommender()
    recommender.load_context(SimpleNamespace(artifacts=artifacts))
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(__file__).with_name("sasrec_model.py")),
        artifacts=artifacts,
        input_example=example,
        signature=infer_signature(example, recommender.recommend(example), params={"k": DEFAULT_K}),
        registered_model_name=registered_model_name,
    )
    return str(info.registered_model_version)


class SasRecRecommender(PythonModel):  # type: ignore[misc]
    def load_context(self, context: Any) -> None:
        import torch

        from rtrec.models.sasrec import SasRec, SasRecConfig

        saved = torch.load(context.artifacts["model"], weights_only=True)
        config = SasRecConfig(**saved["config"])
        state = saved["state"]
        self.model = SasRec(config, state["categories"], state["price_buckets"])
        self.model.load_state_dict(state)
        self.model.eval()
        items = json.loads(Path(context.artifacts["vocabulary"]).read_text())
        self.vocabulary = ItemVocabulary(tuple(items))

    def scores(self, histories: list[list[str]]) -> Any:
        """(rows, vocabulary) scores, PAD and UNKNOWN at -inf (for full-ranking evaluation)."""
        from rtrec.training.loop import score_histories

        indices = [self.vocabulary.indices(list(h)) for h in histories]
        scores = score_histories(self.model, indices)
        scores[:, :FIRST_ITEM] = float("-inf")
        return scores

    # Unannotated on purpose: MLflow reads predict's type hints as a schema and accepts only
    # list[...] ones; the signature comes from the input example instead.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return self.recommend(model_input, params)

    def recommend(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        """``predict``'s work, typed."""
        import numpy as np
        import pandas as pd

        k = int((params or {}).get("k", DEFAULT_K))
        scores = self.scores([list(h) for h in model_input[HISTORY]])
        k = min(k, scores.shape[1] - FIRST_ITEM)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return pd.DataFrame(
            {
                ITEMS: [[self.vocabulary.item(int(i)) for i in row] for row in top],
                SCORES: [[float(s) for s in scores[n, row]] for n, row in enumerate(top)],
            }
        )
