"""read_table: the one reader of the CSV tables a user writes (manifests, pairs, exports)."""

from __future__ import annotations

import pytest

from gml.data.importers import ImporterError
from gml.data.tables import read_table
from gml.errors import GMLError


def test_a_byte_order_mark_and_padded_names_read_as_text(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_bytes(b"\xef\xbb\xbfreference , coded\na.wav,007\n")
    df = read_table(path, ("reference", "coded"))
    assert list(df.columns) == ["reference", "coded"] and df.loc[0, "coded"] == "007"


@pytest.mark.parametrize(
    "content, kwargs, message",
    [
        (None, {"what": "pairs file"}, "x.csv: pairs file not found"),
        (b"a,b\n1,2\n", {"required": ("a", "c")}, "x.csv: missing column(s) c; required: a, c"),
        (
            b"a,b\n1,2\n",
            {"required": ("c",), "hint": "expected X"},
            "missing column(s) c; expected X",
        ),
        (b"a,b\n", {"rows": "ratings"}, "x.csv: no ratings (the file has a header but no rows)"),
        (b"", {}, "x.csv: not a readable CSV file"),
    ],
)
def test_each_problem_is_one_line_naming_the_file(tmp_path, content, kwargs, message):
    path = tmp_path / "x.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(GMLError) as err:
        read_table(path, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_callers_error_type_is_raised(tmp_path):
    with pytest.raises(ImporterError):
        read_table(tmp_path / "none.csv", error=ImporterError)
    assert read_table(_header_only(tmp_path), rows=None).empty  # no rows is fine when asked


def _header_only(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("a,b\n")
    return path
