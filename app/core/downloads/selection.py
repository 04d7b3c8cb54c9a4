"""Which files a configured model needs, decided from its ``model_info.json``.

A model may be configured more than once (clip on onnx here, on rknn there); each configuration is
a :class:`Variant` and one download fetches the union of their files:

* ``model_info.json`` (always, first);
* the weight files of the runtime — one per component at the chosen precision, only the RKNN
  files of the configured device (``services.model_info.select_runtime_files``);
* the dataset files named by ``dataset``;
* support files: tokenizers, configs, vocabularies, dictionaries at the repository root or next
  to the chosen weights (``services.model_info.support_files``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from app.core.downloads.errors import SelectionError
from services.model_info import ModelInfo, ModelInfoError, select_runtime_files, support_files

MODEL_INFO = "model_info.json"


@dataclass(frozen=True)
class Variant:
    """One configuration of a model: runtime, precision, RKNN device, dataset."""

    runtime: str
    precision: str | None = None
    device: str | None = None
    dataset: str | None = None

    def describe(self) -> str:
        parts = [self.runtime]
        if self.device:
            parts.append(self.device)
        if self.precision:
            parts.append(self.precision)
        text = " ".join(parts)
        return f"{text} + dataset {self.dataset}" if self.dataset else text


@dataclass(frozen=True)
class ModelRequest:
    """Everything to fetch for one model repository, and the services waiting for it."""

    model: str
    variants: tuple[Variant, ...]
    services: tuple[str, ...] = ()

    def merged(self, other: ModelRequest) -> ModelRequest:
        return ModelRequest(
            self.model,
            tuple(dict.fromkeys((*self.variants, *other.variants))),
            tuple(dict.fromkeys((*self.services, *other.services))),
        )


def requests_from_config(config: Any, services: Iterable[str] | None = None) -> list[ModelRequest]:
    """One request per model of the enabled services (``services`` narrows them), config order.

    Uses ``NodeConfig.service_specs()`` so BioCLIP models configured under clip are attributed to
    the bioclip service, as the host sees them."""
    wanted = set(services) if services is not None else None
    by_model: dict[str, ModelRequest] = {}
    for spec in config.service_specs():
        if wanted is not None and spec.name not in wanted:
            continue
        for model in spec.models:
            request = ModelRequest(
                model.model,
                (Variant(model.runtime, model.precision, model.rknn_device, model.dataset),),
                (spec.name,),
            )
            known = by_model.get(model.model)
            by_model[model.model] = known.merged(request) if known else request
    return list(by_model.values())


def plan_files(info: ModelInfo, repo_paths: Collection[str], variants: Iterable[Variant]) -> list[str]:
    """The files to fetch, ``model_info.json`` first. Raises :class:`SelectionError` naming what
    the repository offers instead, or which listed file the repository lacks."""
    chosen: dict[str, None] = {MODEL_INFO: None}
    for variant in variants:
        try:
            weights = select_runtime_files(
                info, variant.runtime, precision=variant.precision, device=variant.device
            )
            dataset = info.dataset(variant.dataset).files if variant.dataset else ()
        except ModelInfoError as exc:
            raise SelectionError(f"{exc.reason} (configured: {variant.describe()})") from exc
        chosen.update(dict.fromkeys(weights))
        chosen.update(dict.fromkeys(dataset))
        chosen.update(dict.fromkeys(support_files(info, repo_paths, weights)))
    missing = [path for path in chosen if path not in repo_paths]
    if missing:
        raise SelectionError(
            f"model_info.json of {info.name!r} names {', '.join(missing)} but the repository has no such "
            f"file{'s' if len(missing) > 1 else ''}"
        )
    return list(chosen)
