"""The one text-table helper: aligned text, Markdown and CSV of formatted cells."""

from __future__ import annotations

from gml.text_table import aligned, csv_text, markdown

HEADER = ["name", "r", "rmse"]
ROWS = [["music", "0.912", "4.10"], ["speech|x", "0.8", "12.00"]]


def test_aligned_pads_names_left_and_numbers_right():
    assert aligned(HEADER, ROWS).splitlines() == [
        "name          r   rmse",
        "--------  -----  -----",
        "music     0.912   4.10",
        "speech|x    0.8  12.00",
    ]


def test_aligned_rule_before_a_total_row():
    text = aligned(HEADER, ROWS, header_rule=False, rule_before_last=True)
    assert text.splitlines()[1:] == ["music     0.912   4.10", "-" * 22, "speech|x    0.8  12.00"]


def test_markdown_escapes_bars_and_aligns_numbers_right():
    assert markdown(HEADER, ROWS).splitlines() == [
        "| name | r | rmse |",
        "|:---|---:|---:|",
        "| music | 0.912 | 4.10 |",
        "| speech\\|x | 0.8 | 12.00 |",
    ]
    assert markdown(HEADER, ROWS, left_marker="---").splitlines()[1] == "|---|---:|---:|"


def test_csv_quotes_as_csv_does():
    assert csv_text(["a", "b"], [["1", "x,y"]]) == 'a,b\n1,"x,y"\n'
