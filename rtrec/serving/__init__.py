"""Serving: the online store (Redis) and, later, the HTTP API that reads only from it."""
