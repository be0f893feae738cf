"""Typed, layered, closed configuration (see conf/base.yaml)."""

from rtrec.config.loader import ConfigError, load_settings, project_root
from rtrec.config.settings import Settings

__all__ = ["ConfigError", "Settings", "load_settings", "project_root"]
