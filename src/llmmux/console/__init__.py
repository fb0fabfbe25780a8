"""The operator console at `/ui`: server-rendered pages that read everything through the admin API.

console = Console(config.ui, master_key, accounting)   # built by the App when `ui.enabled`
"""

from .app import Console, is_admin
from .session import Session, Sessions

__all__ = ["Console", "Session", "Sessions", "is_admin"]
