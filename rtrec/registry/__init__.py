"""MLflow: logging runs, registering versions, moving aliases, loading by alias."""
