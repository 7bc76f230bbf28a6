"""Checkpoint files of a run folder: ``checkpoints/iter_XXXXXX.pt`` and ``latest``.

A checkpoint is written atomically (a temporary file in the same folder, then a
rename), and ``checkpoints/latest`` names the newest. Loading takes the newest
checkpoint that loads: a truncated file, or one that ``latest`` names but that is
missing, is named in a warning and the next older one is used. What a checkpoint
holds is the ``Trainer``'s to say (``Trainer.state_dict``).
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from metarl.schema import RunFolderError

__all__ = [
    "CHECKPOINT_DIR",
    "latest_checkpoint",
    "load_latest_checkpoint",
    "save_atomically",
    "write_checkpoint",
]

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"

log = logging.getLogger(__name__)


def save_atomically(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file in the same folder, then rename over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_checkpoint(run_dir: Path, iteration: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``checkpoints/iter_XXXXXX.pt`` of ``iteration`` atomically, point ``latest``
    at it and delete all but the ``keep`` newest checkpoint files; return its path."""
    folder = run_dir / CHECKPOINT_DIR
    path = folder / f"iter_{iteration:06d}.pt"
    save_atomically(state, path)
    write_text_atomically(folder / LATEST, path.name)
    for old in sorted(folder.glob("iter_*.pt"))[:-keep]:
        old.unlink()
    return path


def _checkpoint_files(run_dir: str | Path) -> tuple[list[Path], str | None]:
    """The checkpoint files of a run folder, newest first (the one ``latest`` names
    first), and the name ``latest`` gives when that file is missing."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    files = sorted(folder.glob("iter_*.pt"), key=lambda p: (len(p.name), p.name), reverse=True)
    pointer = folder / LATEST
    if not pointer.is_file():
        return files, None
    named = folder / pointer.read_text().strip()
    if named not in files:
        return files, named.name
    return [named, *(p for p in files if p != named)], None


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint file of a run folder (the one ``checkpoints/latest`` names,
    or the highest iteration when that one is missing), or ``None``. Whether it loads
    is ``load_latest_checkpoint``'s to find out."""
    files, _ = _checkpoint_files(run_dir)
    return files[0] if files else None


# What ``torch.load`` raises for a file that is not a whole checkpoint: a truncated
# zip archive (RuntimeError from PytorchStreamReader), an empty or cut pickle.
_DAMAGED = (RuntimeError, EOFError, pickle.UnpicklingError, OSError)


def load_latest_checkpoint(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of ``run_dir`` that loads, and its state; ``None`` if the
    folder holds no checkpoint file.

    A file that does not load, or a ``checkpoints/latest`` naming a missing file, is
    reported as a warning (naming the file and torch's error) and the next older
    checkpoint is used; the warning names the one used. The folder is not changed.

    Raises:
        RunFolderError: checkpoint files exist but none loads (each named, with its error).
    """
    found = load_newest(run_dir)
    return None if found is None else found[:2]


def load_newest(run_dir: str | Path) -> tuple[Path, dict[str, Any], list[Path]] | None:
    """``load_latest_checkpoint``'s result and the newer files that did not load."""
    files, missing = _checkpoint_files(run_dir)
    skipped, damaged = [], []
    if missing is not None:
        skipped.append(
            f"{Path(run_dir) / CHECKPOINT_DIR / LATEST} names {missing}, which is missing"
        )
    for path in files:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except _DAMAGED as err:
            skipped.append(f"{path} does not load ({type(err).__name__}: {err})")
            damaged.append(path)
            continue
        if skipped:
            log.warning(
                "%s; using %s (iteration %s), the newest checkpoint that loads",
                "; ".join(skipped),
                path,
                state.get("iteration", "?"),
            )
        return path, state, damaged
    if skipped:
        raise RunFolderError(f"{run_dir} holds no checkpoint that loads: " + "; ".join(skipped))
    return None


def set_aside(damaged: list[Path]) -> None:
    """Rename each of ``damaged`` (checkpoint files that do not load) to
    ``<name>.damaged``: kept, but neither loaded again nor kept by pruning in place
    of good ones."""
    for bad in damaged:
        aside = bad.with_name(bad.name + ".damaged")
        os.replace(bad, aside)
        log.warning("%s set aside as %s", bad, aside.name)
