"""Reading the stored data files (gzip CSV tables, the faces archive, PROVENANCE.json)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from stealml.exceptions import DatasetError

DATA_DIR = Path(__file__).resolve().parent / "data"


def data_path(fname: str) -> Path:
    """Path of a stored data file."""
    return DATA_DIR / fname


@cache
def read_table(fname: str) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Header and rows of a stored ``.csv.gz`` table, as strings (cached per process).

    Raises
    ------
    DatasetError
        The file is absent or not a readable gzip CSV.
    """
    path = data_path(fname)
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            rows = [tuple(r) for r in csv.reader(fh)]
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read data file {path}: {exc}") from exc
    if not rows:
        raise DatasetError(f"data file {path} is empty")
    return rows[0], tuple(rows[1:])


@cache
def read_faces() -> tuple[np.ndarray, np.ndarray]:
    """The 400 ORL face images (uint8, 400 x 112 x 92) and subject numbers 1..40."""
    path = data_path("orl_faces.npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            images, target = z["images"], z["target"]
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"cannot read data file {path}: {exc}") from exc
    images.setflags(write=False)
    target.setflags(write=False)
    return images, target


def provenance() -> dict[str, Any]:
    """The parsed ``PROVENANCE.json``: per stored file, its source and sha256.

    Returns
    -------
    dict
        File name -> {package, version, path, upstream, licence, rows, sha256}.
    """
    path = data_path("PROVENANCE.json")
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


def sha256(fname: str) -> str:
    """sha256 hex digest of a stored data file."""
    return hashlib.sha256(data_path(fname).read_bytes()).hexdigest()
