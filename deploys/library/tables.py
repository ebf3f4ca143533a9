"""The narrow tables validation, the smoke test and the build report print
by default: one line per host, within WIDTH columns at any cluster size, as
kubectl's default columns are; the full tables are one setting away
(distcc_wide_tables) and the JSON reports keep everything.
"""

from __future__ import annotations

from operations._printed import WIDTH

GAP = "  "
# The last column (free text) keeps at least this much before the first
# (a host name) is cut: a 40-character host name still fits beside it.
TEXT_MIN = 30


def clipped(text: str, width: int) -> str:
    """text cut to width columns, "..." marking the cut."""
    if len(text) <= width:
        return text
    return text[: width - 3] + "..." if width >= 3 else text[:width]


def narrow_table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: tuple[int, ...] = ()) -> list[str]:
    """header and rows as columns GAP apart, each line at most WIDTH columns.
    The columns between the first and the last are short (a role, counts)
    and kept whole, aligned right when their index is in `right`. The last
    column is free text, cut with "..." to the room left; the first (a host
    name) is cut only when the text would otherwise get less than TEXT_MIN."""
    columns = list(zip(header, *rows, strict=True))
    middle = [max(len(cell) for cell in column) for column in columns[1:-1]]
    room = WIDTH - sum(middle) - len(GAP) * (len(header) - 1)
    name = max(len(cell) for cell in columns[0])
    text = max(len(cell) for cell in columns[-1])
    if name + text > room:
        name = min(name, room - min(text, TEXT_MIN))
        text = room - name
    lines = []
    for cells in (header, *rows):
        out = [clipped(cells[0], name).ljust(name)]
        for index, (cell, width) in enumerate(zip(cells[1:-1], middle, strict=True), start=1):
            out.append(cell.rjust(width) if index in right else cell.ljust(width))
        out.append(clipped(cells[-1], text))
        lines.append(GAP.join(out).rstrip())
    return lines
