"""The live web dashboard, a Quart blueprint mounted at ``/``."""

from .views import create_blueprint

__all__ = ["create_blueprint"]
