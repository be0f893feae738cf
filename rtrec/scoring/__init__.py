"""Real-time scoring's pure core: candidates and their reasons, fusion, business rules, the
exploration slot and A/B assignment, as plain functions over plain data. The Flink scoring job
(``rtrec.streaming.scoring``) wraps them; offline tuning and the tests call them directly."""
