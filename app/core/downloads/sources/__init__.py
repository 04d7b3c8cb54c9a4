"""Where model repositories come from, in the order the config asks for.

Region ``cn`` tries ModelScope first, ``other`` Hugging Face first; the other hub is the
fallback. A configured ``downloads.local_dir`` comes before both. Endpoints: the config's
``downloads.endpoints``, else ``HF_ENDPOINT`` / ``MODELSCOPE_ENDPOINT``, else the public hubs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from app.core.downloads.sources.base import ByteStream, RemoteFile, RepoListing, Source
from app.core.downloads.sources.http import HttpClient
from app.core.downloads.sources.huggingface import DEFAULT_ENDPOINT as HF_DEFAULT
from app.core.downloads.sources.huggingface import HuggingFaceSource
from app.core.downloads.sources.local import LocalSource
from app.core.downloads.sources.modelscope import DEFAULT_ENDPOINT as MS_DEFAULT
from app.core.downloads.sources.modelscope import ModelScopeSource

__all__ = [
    "ByteStream",
    "HttpClient",
    "HuggingFaceSource",
    "LocalSource",
    "ModelScopeSource",
    "RemoteFile",
    "RepoListing",
    "Source",
    "build_sources",
    "endpoints",
]


def endpoints(downloads: Any, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The endpoint of each hub: config first, then the environment, then the public default."""
    env = os.environ if env is None else env
    hf = downloads.endpoints.huggingface or env.get("HF_ENDPOINT") or HF_DEFAULT
    ms = downloads.endpoints.modelscope or env.get("MODELSCOPE_ENDPOINT") or MS_DEFAULT
    return {"huggingface": hf.rstrip("/"), "modelscope": ms.rstrip("/")}


def build_sources(config: Any, http: HttpClient, env: Mapping[str, str] | None = None) -> list[Source]:
    """The sources for ``config`` (a NodeConfig), first choice first."""
    downloads = config.downloads
    urls = endpoints(downloads, env)
    hf = HuggingFaceSource(http, endpoint=urls["huggingface"], owner=downloads.owners.huggingface)
    ms = ModelScopeSource(http, endpoint=urls["modelscope"], owner=downloads.owners.modelscope)
    hubs: list[Source] = [ms, hf] if config.metadata.region == "cn" else [hf, ms]
    if downloads.local_dir is not None:
        return [LocalSource(downloads.local_dir), *hubs]
    return hubs
