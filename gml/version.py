"""The version of gml (one place: the package, its command line and its checkpoints read it)."""

__version__ = "0.1.0.dev0"
