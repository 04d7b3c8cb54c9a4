"""Model downloads: sources (Hugging Face, ModelScope, a local folder), file selection from
``model_info.json``, staging with resume and verification, the cache index, and the manager.

See ``docs/downloads.md``.
"""

from __future__ import annotations

from app.core.downloads.cache import CacheCheck, CacheEntry, ModelCache, check_model_name
from app.core.downloads.errors import DownloadError
from app.core.downloads.manager import DownloadJob, DownloadManager, DownloadResult, format_bytes
from app.core.downloads.selection import ModelRequest, Variant, plan_files, requests_from_config

__all__ = [
    "CacheCheck",
    "CacheEntry",
    "DownloadError",
    "DownloadJob",
    "DownloadManager",
    "DownloadResult",
    "ModelCache",
    "ModelRequest",
    "Variant",
    "check_model_name",
    "format_bytes",
    "plan_files",
    "requests_from_config",
]
