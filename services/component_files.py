"""Find the weight file of one model component (``vision``, ``detection``, ``recognition`` ...).

One rule for every service (MODEL_FORMATS §8.2–8.3), used by ``clip``/``bioclip``, ``face`` and
``ocr``:

* **Candidates**: when the folder has a ``model_info.json``, the files it lists for the runtime
  (for RKNN: for the chosen device), present on disk or not — a listed file that is absent is
  *missing* (a download not finished), never silently replaced by another; a runtime it does not
  offer is an error. Without ``model_info.json``, the files in ``<runtime>/``
  (``rknn/<device>/``) with the runtime's extension.
* **Names**: ``<runtime>/<component>.<precision>.<ext>``; a name without precision
  (``onnx/text.onnx``) is fp32. A component may be accepted under several names
  (``vision``/``visual``); the first name with a candidate wins.
* **Precision**: the asked one exactly (``fp16q8`` loads the fp16 file), else
  :class:`ComponentNotFound` naming what is offered; no precision asked = the best present file
  (fp32, fp16, int8 ...), or the best listed one when none is present yet.
* **Immich** ``<component>/model.<ext>`` when no candidate has the name.

:func:`find_component` returns a :class:`ComponentFile` (which may be absent on disk:
:attr:`ComponentFile.present`); callers collect the absent ones to name every missing file at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.model_info import (
    WEIGHT_EXTENSIONS,
    ModelInfo,
    WeightFile,
    normalise_precision,
    precision_rank,
    runtime_files,
)


class ComponentNotFound(FileNotFoundError):
    """No weight file for a component (or none at the asked precision); the message lists what
    the folder or its ``model_info.json`` has. ``listed``: the candidates came from
    ``model_info.json`` (so more downloading will not help)."""

    def __init__(self, message: str, *, listed: bool = False) -> None:
        super().__init__(message)
        self.listed = listed


@dataclass(frozen=True)
class ComponentFile:
    """The chosen file of one component."""

    path: Path  # absolute (folder / relpath)
    relpath: str  # relative to the model folder, POSIX
    component: str  # the component name in the file name (``visual``, ``model`` ...)
    precision: str  # effective precision (fp32 when the name carries none)
    listed: bool  # named by model_info.json (else found by scanning the folder)

    @property
    def present(self) -> bool:
        return self.path.is_file()


@dataclass(frozen=True)
class WeightCandidates:
    """The weight files a component is chosen from; ``listed``: named by ``model_info.json``
    (else found by scanning the folder)."""

    files: tuple[WeightFile, ...]
    listed: bool


def runtime_extension(runtime: str) -> str:
    return WEIGHT_EXTENSIONS.get(runtime, f".{runtime}")


def candidate_files(
    folder: Path, runtime: str, info: ModelInfo | None = None, *, device: str | None = None
) -> WeightCandidates:
    """The weight files a component may be chosen from: with ``info`` (a ``model_info.json``) the
    files it lists for ``runtime`` (and RKNN ``device``) — a runtime it does not offer is its
    :class:`~services.model_info.ModelInfoError` —, without it the files in ``<runtime>/``."""
    folder = Path(folder)
    if info is not None:
        listed = runtime_files(info, runtime, device=device)
        return WeightCandidates(tuple(WeightFile.parse(p) for p in listed), True)
    sub = folder / runtime
    if runtime == "rknn" and device:
        sub = sub / device.lower()
    ext = runtime_extension(runtime)
    found = sorted(p.relative_to(folder).as_posix() for p in sub.glob(f"*{ext}")) if sub.is_dir() else []
    return WeightCandidates(tuple(WeightFile.parse(p) for p in found), False)


def find_component(
    folder: Path,
    names: str | Sequence[str],
    *,
    runtime: str = "onnx",
    precision: str | None = None,
    info: ModelInfo | None = None,
    device: str | None = None,
    required: bool = True,
    candidates: WeightCandidates | None = None,
) -> ComponentFile | None:
    """The file of the component accepted under ``names`` (see the module docstring).

    Returns None when there is none and ``required`` is False; otherwise raises
    :class:`ComponentNotFound` naming the files seen. ``candidates`` (from
    :func:`candidate_files`) saves re-reading the folder for several components."""
    folder = Path(folder)
    wanted_names = (names,) if isinstance(names, str) else tuple(names)
    wanted = normalise_precision(precision)
    pool = candidates if candidates is not None else candidate_files(folder, runtime, info, device=device)
    files, listed = pool.files, pool.listed
    for name in wanted_names:
        matches = [wf for wf in files if wf.component.lower() == name.lower()]
        if matches and wanted is not None:
            exact = [wf for wf in matches if wf.effective_precision == wanted]
            if not exact:
                offered = ", ".join(sorted({wf.effective_precision for wf in matches}))
                raise ComponentNotFound(
                    f"{folder}: no {wanted} {runtime} file for {name!r}; precisions present: {offered}",
                    listed=listed,
                )
            matches = exact
        if matches:
            best = min(matches, key=lambda wf: _preference(folder, wf))
            return ComponentFile(
                folder / best.path, best.path, best.component, best.effective_precision, listed
            )
        immich = f"{name}/model{runtime_extension(runtime)}"
        if (folder / immich).is_file():
            return ComponentFile(folder / immich, immich, name, wanted or "fp32", False)
    if not required:
        return None
    ext = runtime_extension(runtime)
    where = "listed in model_info.json" if listed else "present"
    seen = ", ".join(sorted(wf.path for wf in files)) or "none"
    raise ComponentNotFound(
        f"{folder}: no {runtime} file for component {' or '.join(repr(n) for n in wanted_names)} "
        f"(looked for {runtime}/<component>[.<precision>]{ext} and <component>/model{ext}; "
        f"{runtime} files {where}: {seen})",
        listed=listed,
    )


def missing_files(folder: Path, chosen: Iterable[Path | None]) -> list[str]:
    """The chosen files (None = a component not used) not on disk (yet), relative to ``folder``."""
    return [p.relative_to(folder).as_posix() for p in chosen if p is not None and not p.is_file()]


def _preference(folder: Path, wf: WeightFile) -> tuple[bool, int, str]:
    """Present files first, then by precision (fp32, fp16 ...), then by path."""
    return (not (folder / wf.path).is_file(), precision_rank(wf.effective_precision), wf.path)
