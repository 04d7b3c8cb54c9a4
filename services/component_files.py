"""Find the weight file of one model component (``detection``, ``recognition`` ...) in a folder.

Model folders come in the layouts of ``MODEL_FORMATS.md`` §1/§8: ``onnx/<component>.<precision>.onnx``
(Python Lumen, Lumen-Hub), ``onnx/<component>.onnx`` (taken as fp32), and Immich's
``<component>/model.onnx``. When the folder has a ``model_info.json`` that lists onnx files, those
listed files are the candidates; otherwise the folder itself is searched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from services.model_info import (
    DEFAULT_PRECISION_ORDER,
    ModelInfo,
    WeightFile,
    normalise_precision,
)


class ComponentNotFound(FileNotFoundError):
    """No weight file for a component; the message lists what the folder has."""


def find_component_file(
    folder: Path,
    component: str | Sequence[str],
    *,
    precision: str | None = None,
    info: ModelInfo | None = None,
    runtime: str = "onnx",
    required: bool = True,
) -> Path | None:
    """The file of ``component`` (the first of several accepted names that exists).

    ``precision`` None = the best present (fp32, then fp16, int8 ...). Raises
    :class:`ComponentNotFound` (or returns None when ``required`` is False) naming the files seen.
    """
    folder = Path(folder)
    names = (component,) if isinstance(component, str) else tuple(component)
    wanted = normalise_precision(precision)
    candidates = _candidates(folder, runtime, info)
    for name in names:
        matches = [wf for wf in candidates if wf.component.lower() == name.lower()]
        if wanted is not None:
            exact = [wf for wf in matches if wf.effective_precision == wanted]
            if matches and not exact:
                offered = ", ".join(sorted({wf.effective_precision for wf in matches}))
                raise ComponentNotFound(
                    f"{folder}: no {wanted} {runtime} file for {name!r}; precisions present: {offered}"
                )
            matches = exact
        if matches:
            best = sorted(matches, key=lambda wf: (_rank(wf.effective_precision), wf.path))[0]
            return folder / best.path
        immich = folder / name / f"model.{runtime}"
        if immich.is_file():
            return immich
    if not required:
        return None
    seen = ", ".join(sorted(wf.path for wf in candidates)) or "none"
    raise ComponentNotFound(
        f"{folder}: no {runtime} file for component {' or '.join(repr(n) for n in names)} "
        f"(looked for {runtime}/<component>[.<precision>].{runtime} and <component>/model.{runtime}; "
        f"{runtime} files present: {seen})"
    )


def _candidates(folder: Path, runtime: str, info: ModelInfo | None) -> list[WeightFile]:
    listed: list[str] = []
    if info is not None and runtime in info.runtimes:
        listed = [p for p in info.runtimes[runtime].files if (folder / p).is_file()]
    if not listed:
        sub = folder / runtime
        if sub.is_dir():
            listed = sorted(f"{runtime}/{p.name}" for p in sub.iterdir() if p.suffix == f".{runtime}")
    return [WeightFile.parse(p) for p in listed]


def _rank(precision: str) -> int:
    try:
        return DEFAULT_PRECISION_ORDER.index(precision)
    except ValueError:
        return len(DEFAULT_PRECISION_ORDER)
