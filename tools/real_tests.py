"""Import the real listening tests of the development data into gml manifests.

The two published tests in ``../shared/data/real-tests/`` (see its README for what they hold and
their terms: evaluation inside this project only, never in the repository) are imported the
way ``docs/importers.md`` tells a user to: CVSSP with ``gml import csv`` (``--where``,
``--map``, ``--role``), Barysenka by that page's MATLAB recipe (run from the document itself, so
the recipe stays true) and then ``gml import csv``.

    python tools/real_tests.py --shared ../shared --out real-tests/
    # writes real-tests/cvssp.csv and real-tests/barysenka.csv
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CVSSP = "data/real-tests/cvssp-singing-voice-separation"
BARYSENKA = "data/real-tests/barysenka-speech-enhancement"


def cvssp_args(shared: Path, out: Path) -> list[str]:
    """The ``gml import csv`` arguments of docs/importers.md for the CVSSP study."""
    root = shared / CVSSP
    return [
        "import", "csv", str(root / "data" / "ratings.csv"), "--out", str(out),
        "--audio-root", str(root),
        "--where", "experiment=quality", "--where", "is_replicate=False",
        "--map", "test=cvssp-quality,item=page,condition=sound,listener=subject,score=rating",
        "--map", "reference=site/sounds/{page}/ref.flac,coded=site/sounds/{page}/{sound}.flac",
        "--role", "ref=hidden_reference", "--role", "Quality=low_anchor",
        "--role", "Interferer=anchor",
    ]  # fmt: skip


def recipe(name: str = "barysenka") -> str:
    """The Python code block that follows ``<!-- recipe: NAME ...-->`` in docs/importers.md."""
    text = (REPO / "docs" / "importers.md").read_text(encoding="utf-8")
    m = re.search(rf"<!-- recipe: {name}\b.*?-->\s*```python\n(.*?)```", text, re.S)
    if m is None:
        raise SystemExit(f"docs/importers.md: no recipe block named {name!r}")
    return m.group(1)


def barysenka_table(shared: Path, workdir: Path) -> Path:
    """Run the documented MATLAB-array recipe in ``workdir``; returns the long ratings CSV."""
    code = recipe().replace(
        'root = "inter-component-phase-speech-enhancement-MUSHRA"',
        f"root = {str(shared / BARYSENKA)!r}",
    )
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(workdir):
        exec(compile(code, "docs/importers.md (barysenka recipe)", "exec"), {})
    return workdir / "barysenka-ratings.csv"


def import_all(shared: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``cvssp.csv`` and ``barysenka.csv`` manifests into ``out_dir``."""
    from gml.cli import main

    shared, out_dir = Path(shared).resolve(), Path(out_dir).resolve()
    out = {"cvssp": out_dir / "cvssp.csv", "barysenka": out_dir / "barysenka.csv"}
    main(cvssp_args(shared, out["cvssp"]))
    table = barysenka_table(shared, out_dir / "barysenka-source")
    main(["import", "csv", str(table), "--audio-root", str(shared / BARYSENKA),
          "--out", str(out["barysenka"])])  # fmt: skip
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", default=str(REPO.parent / "shared"), help="the shared folder")
    p.add_argument("--out", default="real-tests", help="folder for the manifests")
    a = p.parse_args()
    import_all(a.shared, a.out)
