"""Importers: listening-test results in their native formats → a validated :class:`Manifest`.

=============  ==========================================  ========================================
format         function                                    input
=============  ==========================================  ========================================
webMUSHRA      :func:`import_webmushra`                    ``mushra.csv`` files + YAML configs
BeaqleJS       :func:`import_beaqlejs`                     one JSON results file per listener
ODAQ (XML)     :func:`import_odaq`                         one ``<MUSHRA>`` XML file per listener
any table      :func:`import_table`                        a CSV + a column mapping
=============  ==========================================  ========================================

Each returns an :class:`ImportResult` (``.manifest`` plus counts and notes);
:func:`apply_screening` applies the ITU-R BS.1534-3 post-screening and :func:`write_manifest`
writes the CSV atomically. ``gml import`` (:mod:`gml.cli.import_`) is the command-line front.
Formats and mappings are described in ``docs/importers.md``.
"""

from gml.data.importers.anchors import ANCHOR_CUTOFFS, lowpass, render_lowpass_anchor
from gml.data.importers.base import ROLES, ImporterError, ImportResult, write_manifest
from gml.data.importers.beaqlejs import import_beaqlejs
from gml.data.importers.odaq import import_odaq
from gml.data.importers.screening import (
    ScreeningReport,
    apply_screening,
    assign_roles,
    parse_roles,
    screen_listeners,
)
from gml.data.importers.table import import_table, parse_map, parse_where
from gml.data.importers.webmushra import import_webmushra, read_config

__all__ = [
    "ANCHOR_CUTOFFS",
    "ROLES",
    "ImportResult",
    "ImporterError",
    "ScreeningReport",
    "apply_screening",
    "assign_roles",
    "import_beaqlejs",
    "import_odaq",
    "import_table",
    "import_webmushra",
    "lowpass",
    "parse_map",
    "parse_roles",
    "parse_where",
    "read_config",
    "render_lowpass_anchor",
    "screen_listeners",
    "write_manifest",
]
