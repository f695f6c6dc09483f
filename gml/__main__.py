"""``python -m gml`` runs the ``gml`` command."""

from gml.cli import main

if __name__ == "__main__":
    main()
