"""The column names of online CF's output records, shared by the Flink job's upsert topics
(``rtrec.item_neighbours``, ``rtrec.cf_scores``) and the Spark twin's gold tables: ``item_id,
neighbours`` and ``user_id, scores``, each list of ``{item_id, score}`` best first."""

NEIGHBOURS = "neighbours"
SCORES = "scores"
SCORE = "score"
