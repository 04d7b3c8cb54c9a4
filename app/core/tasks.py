"""Named, tracked background tasks (the one implementation lives in :mod:`services.tasks`, the
lowest layer, so the service host and the hub share it)."""

from services.tasks import TaskTracker

__all__ = ["TaskTracker"]
