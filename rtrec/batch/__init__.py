"""Batch jobs on PySpark and Delta Lake."""
