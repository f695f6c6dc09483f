"""``gml configs``: the configurations shipped with gml, with their one-line descriptions."""

from __future__ import annotations

import argparse
import re
from pathlib import Path


def describe(path: Path) -> str:
    """The first sentence of a YAML config's leading comment."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text.startswith("#") or text.lstrip("#").strip().startswith("gml "):
            break
        words.append(text.lstrip("#").strip())
    paragraph = " ".join(w for w in words if w)
    # a sentence ends at a full stop, but not the one of an abbreviation like "eq. 5"
    end = re.search(r"(?<!\beq)(?<!\be\.g)(?<!\bi\.e)\.(\s|$)", paragraph)
    return paragraph[: end.start() + 1] if end else paragraph


def main(argv: list[str]) -> None:
    """Entry point of ``gml configs``."""
    from gml.configs import configs_dir

    parser = argparse.ArgumentParser(
        prog="gml configs",
        description="List the configurations shipped with gml. Use one by name from any "
        "folder: 'gml fit --config cutmix' (or cutmix.yaml); '--show NAME' prints it.",
    )
    parser.add_argument("--show", metavar="NAME", help="print one configuration's YAML")
    args = parser.parse_args(argv)
    if args.show:
        from gml.configs import resolve_config

        print(Path(resolve_config(args.show)).read_text(encoding="utf-8"), end="")
        return
    paths = sorted(configs_dir().glob("*.yaml"))
    width = max(len(p.stem) for p in paths)
    for p in paths:
        print(f"{p.stem:<{width}}  {describe(p)}")
    print(f"\n(in {configs_dir()}; 'gml fit --config NAME' from any folder)")
