"""The narrow tables' layout: every line within WIDTH columns, whatever the
cells hold; validation's and the build report's own tests render real ones."""

from __future__ import annotations

from deploys.library.tables import WIDTH, clipped, narrow_table


def test_clipped_marks_the_cut():
    assert clipped("worker1.distcc.internal", 23) == "worker1.distcc.internal"
    assert clipped("worker1.distcc.internal", 10) == "worker1..."
    assert len(clipped("x" * 300, 42)) == 42


def test_short_cells_are_kept_whole_and_aligned():
    lines = narrow_table(("host", "ok", "note"), [("b", "13", "-"), ("worker2", "7", "fine")], right=(1,))
    assert lines == ["host     ok  note", "b        13  -", "worker2   7  fine"]


def test_a_table_without_rows_is_its_header():
    assert narrow_table(("worker", "ok", "failed", "failed because"), []) == ["worker  ok  failed  failed because"]


def test_no_line_passes_the_width_whatever_the_cells():
    rows = [("h" * 150, "builder", "13", "t" * 400), ("w", "worker", "0", "")]
    lines = narrow_table(("host", "role", "ok", "first problem"), rows, right=(2,))
    assert max(len(line) for line in lines) == WIDTH
    assert lines[1].startswith("h" * 30) and "...  builder  13  " + "t" * 27 + "..." in lines[1]
