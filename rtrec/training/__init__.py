"""Training and evaluation of the deep recommender: data loading, distributed backends, the
loop, full-ranking metrics and baselines (torch imported lazily by the modules that need it)."""
