"""Models from Python plugins: the entry-point group ``zooscope.models`` (issue 17).

The contract: an installed distribution declares, in its pyproject.toml::

    [project.entry-points."zooscope.models"]
    my-models = "my_package.zoo:models"

and ``my_package.zoo.models()`` returns an iterable of ``model_zoo.ModelSpec``. Each spec's ``builder``
builds the plugin's own ``nn.Module`` from ``spec.config``; its ``checkpoint`` is the absolute path of a
``.safetensors`` file (loaded with safetensors only, header checked first), or "" for a builder that
loads its own weights. Names must not collide with zoo models or with other plugins' models.

A plugin is code: installing it is the server operator's decision, exactly like installing any package
(zooscope imports it; it never imports code from a model folder). A plugin that fails to import, raises,
or returns something that is not a ModelSpec is reported (logged and listed on the Models page), never
fatal: the zoo and the other plugins keep working.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from importlib import metadata
from pathlib import Path

from .spec import ModelSpec

GROUP = "zooscope.models"
log = logging.getLogger(__name__)

_LOCK = threading.RLock()
_SPECS: dict[str, ModelSpec] | None = None
_PROBLEMS: dict[str, str] = {}


def _entry_points() -> list:
    return sorted(metadata.entry_points(group=GROUP), key=lambda ep: ep.name)


def _dist_name(ep) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else ep.value


def _sha256(path: Path) -> str:
    from .sources import weights_sha256

    return weights_sha256([path])


def _adopt(spec: object, ep, reserved: set[str], seen: dict[str, ModelSpec]) -> ModelSpec:
    where = f"plugin {ep.name} ({_dist_name(ep)})"
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"{where} returned {type(spec).__name__}, not a model_zoo.ModelSpec")
    if spec.name in reserved:
        raise ValueError(f"{where}: model name {spec.name!r} is a zoo model's; rename it in the plugin")
    if spec.name in seen:
        raise ValueError(f"{where}: model name {spec.name!r} is already taken by "
                         f"{seen[spec.name].extra.get('plugin', 'another plugin')}; rename it")
    path = spec.checkpoint_path
    if path is not None:
        if path.suffix != ".safetensors":
            raise ValueError(f"{where}: model {spec.name!r} names {path.name} as weights; plugins ship "
                             ".safetensors only (pickles are never loaded)")
        if not path.is_file():
            raise ValueError(f"{where}: model {spec.name!r} weights {path} are missing; reinstall the plugin")
    extra = {**spec.extra, "source": "plugin", "plugin": f"{ep.name} ({_dist_name(ep)})", "entry_point": ep.value,
             "path": str(path or ""), "sha256": _sha256(path) if path is not None else spec.extra.get("sha256", "")}
    extra.setdefault("card", {"sha256": extra["sha256"], **spec.extra.get("card", {})})
    return dataclasses.replace(spec, extra=extra)


def discover(reserved: set[str], refresh: bool = False) -> dict[str, ModelSpec]:
    """name -> spec of every plugin model (cached; ``refresh=True`` reads the entry points again)."""
    global _SPECS
    with _LOCK:
        if _SPECS is not None and not refresh:
            return dict(_SPECS)
        specs: dict[str, ModelSpec] = {}
        _PROBLEMS.clear()
        for ep in _entry_points():
            try:
                factory = ep.load()
                found = [_adopt(s, ep, reserved, specs) for s in factory()]
            except Exception as e:  # noqa: BLE001 - a broken plugin is reported, never fatal
                _PROBLEMS[f"plugin {ep.name} ({_dist_name(ep)})"] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
                log.warning("zooscope plugin %s failed: %s: %s", ep.name, type(e).__name__, e)
                continue
            specs.update((s.name, s) for s in found)
        _SPECS = specs
        return dict(specs)


def problems() -> dict[str, str]:
    """Plugin -> why it was not loaded."""
    with _LOCK:
        return dict(_PROBLEMS)


def forget() -> None:
    """Read the entry points again on next use (tests, after installing a plugin)."""
    global _SPECS
    with _LOCK:
        _SPECS = None
        _PROBLEMS.clear()
