"""Map the config onto the transport-free contract of ``services.api``.

BioCLIP-family models (``bioclip-2`` ...) configured under ``clip`` — as the seed's full example
does with its ``expert`` model — are served by the ``bioclip`` service, because on a node each
task belongs to exactly one service (``bioclip_classify`` is BioCLIP's, ``semantic_*`` CLIP's):

* with no ``services.bioclip`` section, they form an enabled ``bioclip`` service (right after
  ``clip``, inheriting clip's ``preload``);
* with an enabled ``services.bioclip``, they are appended to its models (alias clashes are
  prefixed ``clip-``);
* with ``services.bioclip.enabled: false`` they are not served.

If clip's default model moves away, clip's default becomes its first remaining model; a clip
section left with no model is dropped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from app.core.config.model import is_bioclip_model
from services.api import HostSettings, ModelSpec, ServiceSpec

if TYPE_CHECKING:
    from app.core.config.model import NodeConfig, ServiceConfig


def _model_specs(config: NodeConfig, service: ServiceConfig) -> list[ModelSpec]:
    return [
        ModelSpec(
            alias=alias,
            model=model.model,
            runtime=model.runtime,
            path=config.model_dir(model.model),
            precision=model.precision,
            rknn_device=model.rknn_device,
            dataset=model.dataset,
        )
        for alias, model in service.models.items()
    ]


def to_service_specs(config: NodeConfig) -> list[ServiceSpec]:
    """One :class:`ServiceSpec` per enabled service, models resolved to ``<cache_dir>/models/<model>``."""
    specs: list[ServiceSpec] = []
    moved: list[ModelSpec] = []
    clip_index: int | None = None
    for name, service in config.services.items():
        if not service.enabled:
            continue
        models = _model_specs(config, service)
        default = service.default_model
        if name == "clip":
            moved = [m for m in models if is_bioclip_model(m.model)]
            models = [m for m in models if not is_bioclip_model(m.model)]
            if default not in {m.alias for m in models}:
                default = models[0].alias if models else None
            clip_index = len(specs)
            if not models:
                continue
        specs.append(
            ServiceSpec(
                name=name,
                models=tuple(models),
                default_model=default,
                env=dict(service.env),
                preload=service.preload,
            )
        )
    if not moved:
        return specs
    bioclip = config.services.get("bioclip")
    if bioclip is None:
        clip = config.services["clip"]
        spec = ServiceSpec(
            name="bioclip", models=tuple(moved), default_model=moved[0].alias, env={}, preload=clip.preload
        )
        assert clip_index is not None  # models only move out of an enabled clip section
        clip_kept = clip_index < len(specs) and specs[clip_index].name == "clip"
        specs.insert(clip_index + 1 if clip_kept else clip_index, spec)
    elif bioclip.enabled:
        index = next(i for i, s in enumerate(specs) if s.name == "bioclip")
        existing = specs[index]
        taken = {m.alias for m in existing.models}
        extra = []
        for model in moved:
            alias = model.alias if model.alias not in taken else f"clip-{model.alias}"
            taken.add(alias)
            extra.append(replace(model, alias=alias))
        specs[index] = ServiceSpec(
            name="bioclip",
            models=(*existing.models, *extra),
            default_model=existing.default_model,
            env=existing.env,
            preload=existing.preload,
        )
    return specs


def to_host_settings(config: NodeConfig) -> HostSettings:
    """The service host's knobs from the ``node`` section."""
    node = config.node
    return HostSettings(
        model_idle_ttl_s=float(node.model_idle_ttl_s),
        max_loaded_models=node.max_loaded_models,
        max_concurrency_per_model=node.max_concurrency,
        queue_size=node.queue_size,
        batch_max_size=node.batch_max_size,
        batch_max_wait_ms=node.batch_max_wait_ms,
        execution_providers=tuple(node.execution_providers),
        intra_op_threads=node.cpu_threads,
        spin_wait=node.cpu_spin_wait,
    )
