"""Local services for development and tests: a KRaft Kafka broker, MLflow and Redis on loopback.

``up``/``down``/``status`` manage them as a whole (``rtrec local ...``); ``ensure_topics``
creates the configured Kafka topics.
"""

from rtrec.local.services import Service, ServiceStatus, State, services
from rtrec.local.stack import down, status, up
from rtrec.local.topics import ensure_topics

__all__ = ["Service", "ServiceStatus", "State", "down", "ensure_topics", "services", "status", "up"]
