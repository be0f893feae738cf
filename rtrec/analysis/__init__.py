"""What the notebooks in ``notebooks/`` compute, as typed functions, so the notebooks stay a
sequence of calls and plots (``docs/notebooks.md``).

``stream``: read the event topic and its dead letters, and summarise them (event-type mix, long
tail, sessions, time of day, funnel). ``models``: the train job's MLflow runs as a quality
table, registered versions and their freshness, scoring-list freshness, online A/B metrics.
``plots``: the matplotlib figures of both. pandas and matplotlib come with the app runtime's
``ops`` extra; they are imported where used.
"""
