"""Hydra composition for every command line: the packaged configs, a user's own folder, one-line errors.

The configs ship inside the package (``xtrimo/configs``, the repository's ``configs/`` folder). A user adds a folder
of their own with Hydra's search path, as one more override, e.g.
``hydra.searchpath=[file:///home/me/xtrimo-configs]``: the folder mirrors ``configs/`` and its files join the
packaged groups (a model preset in ``<folder>/model/``, a benchmark task in ``<folder>/bench/task/``) without
copying anything. A mistyped key or option is a
one-line ``ValueError`` with the nearest valid names.

Hydra is imported when :func:`compose` runs, not when this module is imported (the core stays Hydra-free).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def config_dir() -> Path:
    """The packaged configs folder (``configs/`` of a checkout, ``xtrimo/configs`` of an installed wheel)."""
    return Path(str(resources.files("xtrimo.configs")))


def schema_keys(schema: type, prefix: str = "") -> list[str]:
    """Every dotted key of a dataclass schema, nested dataclasses (and optional ones) included."""
    hints = typing.get_type_hints(schema)
    keys = []
    for f in dataclasses.fields(schema):
        name = f"{prefix}{f.name}"
        keys.append(name)
        inner = [t for t in (hints[f.name], *typing.get_args(hints[f.name])) if dataclasses.is_dataclass(t)]
        if inner:
            keys += schema_keys(inner[0], f"{name}.")
    return keys


def _options(group: str, search: list[Path]) -> list[str]:
    names = set()
    for root in search:
        folder = root / group
        if folder.is_dir():
            names |= {p.stem for p in folder.glob("*.yaml")}
    return sorted(names)


def _nearest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def explain(message: str, schema: type, search: list[Path]) -> str | None:
    """A one-line explanation with the nearest valid names, for Hydra's unknown-key and unknown-option errors."""
    key = re.search(r"Could not override '([^']+)'", message) or re.search(r"Key '([^']+)' is not in struct", message)
    if key:
        bad = key.group(1).lstrip("+~")
        return f"unknown key '{bad}'{_nearest(bad, schema_keys(schema))}"
    option = re.search(r"Could not find '([^']+)/([^'/]+)'", message)
    if option:
        group, bad = option.groups()
        valid = _options(group, search)
        return f"unknown {group} '{bad}'{_nearest(bad, valid)} (valid: {', '.join(valid)})"
    return None


def compose(schema: type[T], config_name: str, overrides: list[str], subdir: str = "") -> T:
    """Compose ``<configs>/<subdir>/<config_name>.yaml`` with ``overrides`` into a validated ``schema`` instance.

    Args:
        schema: the dataclass the YAML files fill; stored as ``<config_name>_schema`` for their defaults lists.
        config_name: the primary config.
        overrides: Hydra overrides (``hydra.searchpath=[file:///...]`` adds a user's folder).
        subdir: the configs' sub-folder (``bench``, ``fold``) or the top level.

    Raises:
        ValueError: one line naming the bad key, option or value (with the nearest valid ones).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from xtrimo.cli_utils import one_line

    root = config_dir() / subdir
    overrides = [_mirror(o, subdir) for o in overrides]
    keys = schema_keys(schema)
    for o in overrides:  # '+key=value' would add a key the schema does not have instead of failing
        key = o.split("=", 1)[0].lstrip("+~")
        if o.startswith("+") and not key.startswith("hydra.") and key not in keys:
            raise ValueError(f"unknown key '{key}'{_nearest(key, keys)}")
    ConfigStore.instance().store(name=f"{config_name}_schema", node=schema)
    try:
        with initialize_config_dir(config_dir=str(root), version_base=None):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
        return OmegaConf.to_object(cfg)
    except (HydraException, OmegaConfBaseException) as exc:
        message = one_line(exc)
        raise ValueError(explain(message, schema, [root, *user_folders(overrides)]) or message) from None


def user_folders(overrides: list[str]) -> list[Path]:
    """The folders a ``hydra.searchpath=[file://...]`` override adds (each mirrors the layout of ``configs/``)."""
    found = re.findall(r"file://([^,\]\s]+)", " ".join(o for o in overrides if o.startswith("hydra.searchpath")))
    return [Path(p) for p in found]


def _mirror(override: str, subdir: str) -> str:
    """A user's folder mirrors ``configs/``: for a command rooted in ``configs/<subdir>``, search
    ``<folder>/<subdir>``."""
    if not subdir or not override.startswith("hydra.searchpath"):
        return override
    return re.sub(r"(file://[^,\]\s]+)", lambda m: f"{m.group(1).rstrip('/')}/{subdir}", override)


def resolved(cfg: Any) -> str:
    """The composed config as YAML (what a run records next to its results)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
