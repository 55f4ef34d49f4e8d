"""Analysis configuration files kept in a proposal's ``config/`` folder: listed and saved.

Saving writes one plain-named ``.toml`` or ``.cfg`` file in that folder only, atomically,
never over an existing file unless asked. What the text says (TOML or PyMca .cfg) is the
XRF engine's business (``xrf.payloads.config_text``); this module knows only files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from beamdesk.errors import Conflict, Invalid
from beamdesk.h5.paths import PathNotFound, clean_relative

CONFIG_FOLDER = "config"
CONFIG_SUFFIXES = (".toml", ".cfg")


def config_folder(proposal_root: Path) -> Path:
    return proposal_root / CONFIG_FOLDER


def config_files(proposal_root: Path) -> list[str]:
    """The configuration files of the proposal, as ``config/<name>``, by name."""
    folder = config_folder(proposal_root)
    if not folder.is_dir():
        return []
    names = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in CONFIG_SUFFIXES and not p.name.startswith(".")
    )
    return [f"{CONFIG_FOLDER}/{n}" for n in names]


def config_name(name: str) -> str:
    """A plain file name ending .toml/.cfg: no folders, nothing outside config/;
    :class:`Invalid` otherwise."""
    try:
        clean = clean_relative(name)
    except PathNotFound:
        raise Invalid(f"{name!r} is not a valid file name.") from None
    if "/" in clean or not clean.lower().endswith(CONFIG_SUFFIXES) or clean.startswith("."):
        raise Invalid(
            "Give a plain file name ending .toml or .cfg, e.g. 'shell_fit.toml'; "
            "it is saved in the proposal's config/ folder.",
        )
    return clean


def write_config_file(folder: Path, name: str, text: str, overwrite: bool) -> Path:
    """Write atomically (temporary name, then rename) inside ``folder`` only;
    :class:`Conflict` if the file exists and not ``overwrite``."""
    folder.mkdir(exist_ok=True)
    real = folder.resolve()
    target = real / name
    if target.parent != real or target.is_symlink():
        raise Invalid(f"{name!r} is not a valid file name.")
    if target.exists() and not overwrite:
        raise Conflict(f"config/{name} exists; save with overwrite, or choose another name.")
    fd, tmp = tempfile.mkstemp(dir=real, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def save_config(proposal_root: Path, name: str, text: str, overwrite: bool) -> str:
    """Save ``text`` as ``config/<name>`` of the proposal (``name`` checked by
    :func:`config_name`); its proposal-relative name."""
    name = config_name(name)
    write_config_file(config_folder(proposal_root), name, text, overwrite)
    return f"{CONFIG_FOLDER}/{name}"
