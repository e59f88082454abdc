"""MNIST as CSV: the streaming parser (label then 784 pixels, or pixels only, header
optional) and the Kaggle folders (``mnist_train.csv``/``mnist_test.csv``, Digit Recognizer's
``train.csv``).

Images come back as ``(N, 28, 28) uint8 in [0, 255]``, labels as ``(N,) uint8 in [0, 9]``;
anything else raises :class:`~mnist_core.datasets.common.DataError` naming the file and line.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import IMAGE_SHAPE, N_PIXELS, DataError, read_bytes


def parse_csv(data: bytes | str, name: str = "<csv>",
              labeled: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse MNIST-as-CSV: rows of ``label, p0..p783`` or, unlabeled, ``p0..p783``.

    A header row is detected and skipped. ``labeled=None`` infers labels from the column
    count (785 -> labeled, 784 -> unlabeled). Returns ``(N, 28, 28) uint8`` images and
    ``(N,) uint8`` labels (``None`` when unlabeled). Raises :class:`DataError` naming the
    file and the first offending line.

    Files of plain digits, commas and newlines (every MNIST CSV seen, Kaggle's included)
    are parsed straight from the bytes into ``uint8`` (:func:`_parse_digits`): Kaggle's
    28,000-row ``test.csv`` in well under a second, a few MB of memory beyond the result.
    Anything else that may still be numbers (spaces, decimals, signs, blank lines) goes
    through ``np.loadtxt`` a block of rows at a time (:func:`_parse_general`).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    end = len(raw)
    while end and raw[end - 1:end].isspace():  # trailing blank lines
        end -= 1
    if not end:
        raise DataError(f"{name}: the file is empty")
    cut = raw.find(b"\n", 0, end)
    first_line = raw[:cut if cut >= 0 else end].decode("utf-8", errors="replace")
    first = [c.strip().strip('"') for c in first_line.split(",")]
    has_header = not all(_is_number(c) for c in first if c)
    start = 0
    if has_header:
        if len(first) == N_PIXELS + 1 and first[0].lower() not in ("label", "labels", "y", "class"):
            raise DataError(f"{name}: header's first column is {first[0]!r}; expected 'label'")
        start = cut + 1 if cut >= 0 else end
    if start >= end:
        raise DataError(f"{name}: header only, no data rows")
    line_end = raw.find(b"\n", start, end)
    n_cols = raw.count(b",", start, line_end if line_end >= 0 else end) + 1
    if labeled is None:
        if n_cols not in (N_PIXELS, N_PIXELS + 1):
            raise DataError(f"{name}: rows have {n_cols} columns; expected 785 (label + 784 "
                            f"pixels) or 784 (pixels only)")
        labeled = n_cols == N_PIXELS + 1
    want = N_PIXELS + int(labeled)
    body = _CsvBody(raw, start, end, want, name, int(has_header))
    try:
        return _parse_rows(body, _parse_digits, labeled)
    except _NotPlain:
        return _parse_rows(body, _parse_general, labeled)


def _parse_rows(body: _CsvBody, parse, labeled: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`parse_csv`'s rows, a block at a time through ``parse``."""
    raw, start, end, want, name = body.raw, body.start, body.end, body.want, body.name
    table = np.empty((raw.count(b"\n", start, end) + 1, want), np.uint8)  # rows, at most
    checks, n, line = _RangeChecks(labeled), 0, 0
    for lo, hi in body.blocks():
        block, lines = parse(body, line, lo, hi)
        line += lines
        checks.add(n, block)
        if not checks.failed:
            table[n:n + len(block)] = block
        n += len(block)
    checks.raise_if_any(name)
    table = table[:n]  # loadtxt skips blank lines
    labels = None
    if labeled:
        labels, table = table[:, 0].copy(), table[:, 1:]
    return np.ascontiguousarray(table).reshape(-1, *IMAGE_SHAPE), labels


@dataclass(frozen=True)
class _CsvBody:
    """The data rows of a CSV, ``raw[start:end]``: ``want`` columns a row, after
    ``skipped`` lines (the header), for line numbers in messages."""

    raw: bytes
    start: int
    end: int
    want: int
    name: str
    skipped: int

    def blocks(self):
        """``(start, end)`` of blocks of whole lines, about :data:`CSV_BLOCK_BYTES` each."""
        pos = self.start
        while pos < self.end:
            stop = self.raw.find(b"\n", min(pos + CSV_BLOCK_BYTES, self.end), self.end)
            stop = self.end if stop < 0 else stop
            yield pos, stop
            pos = stop + 1

    def error(self, problem: str) -> DataError:
        return DataError(f"{self.name}: {problem}")

    def bad_width(self, widths: np.ndarray, first_row: int) -> DataError:
        """The error for rows of ``widths`` columns (from data row ``first_row``), some
        not :attr:`want`: every row the same width says so, else the first bad line."""
        if first_row == 0 and np.all(widths == widths[0]):
            return self.error(f"rows have {widths[0]} columns; expected {self.want}")
        bad = int(np.argmax(widths != self.want))
        return self.error(f"line {first_row + bad + 1 + self.skipped} has {widths[bad]} "
                          f"columns, expected {self.want}")


class _RangeChecks:
    """Labels in 0-9 and pixels in 0-255, gathered block by block and reported for the
    whole file (the first bad label's row, the pixels' range), labels first."""

    def __init__(self, labeled: bool):
        self.labeled = labeled
        self.bad_label: tuple[int, float] | None = None
        self.low, self.high = np.inf, -np.inf

    def add(self, row: int, block: np.ndarray) -> None:
        if self.labeled and self.bad_label is None:
            labels = block[:, 0]
            bad = (labels < 0) | (labels > 9)
            if bad.any():
                i = int(np.argmax(bad))
                self.bad_label = (row + i, float(labels[i]))
        pixels = block[:, int(self.labeled):]
        self.low, self.high = min(self.low, pixels.min()), max(self.high, pixels.max())

    @property
    def failed(self) -> bool:
        return self.bad_label is not None or self.low < 0 or self.high > 255

    def raise_if_any(self, name: str) -> None:
        if self.bad_label is not None:
            row, label = self.bad_label
            raise DataError(f"{name}: label {label:g} on data row {row + 1} is outside 0-9")
        if self.low < 0 or self.high > 255:
            raise DataError(f"{name}: pixel values must lie in 0-255 (found {self.low:g} to "
                            f"{self.high:g})")


# Bytes of CSV parsed at a time: the parser's temporary arrays take ~20 bytes per byte of
# CSV, so 4 MB blocks keep them under 100 MB whatever the file's size.
CSV_BLOCK_BYTES = 2**22


class _NotPlain(Exception):
    """The CSV holds more than digits, commas and newlines: parse it the general way."""


# Bytes minus ord("0") as uint8: digits are 0-9, everything else wraps around to >= 10.
_COMMA, _NEWLINE, _EDGE = (ord(",") - 48) % 256, (ord("\n") - 48) % 256, 255


def _parse_digits(body: _CsvBody, row: int, lo: int, hi: int) -> tuple[np.ndarray, int]:
    """Lines ``raw[lo:hi]`` of comma-separated digits -> ``(rows, want) uint16`` (float64
    where a cell has over three digits) and the number of lines; raises :class:`_NotPlain` for any other byte, a blank line or an
    empty cell.

    Vectorised over the block's bytes: the separators found, each cell's value gathered
    from its last three digits (a longer cell, leading zeros or too large, is read on
    its own), so no Python work per row and no float64 copy of the table.
    """
    # The block's digits after four edge markers and before a final newline, so that
    # behind[k][i] is the k-th byte before separator i, with no index arithmetic.
    digit = np.empty(hi - lo + 5, np.uint8)
    digit[:4], digit[-1] = _EDGE, _NEWLINE
    np.subtract(np.frombuffer(body.raw, np.uint8, hi - lo, lo), 48, out=digit[4:-1])
    behind = [digit[4 - k:len(digit) - k] for k in range(5)]
    ends = np.flatnonzero(behind[0] >= 10)  # the separator after each cell
    seps, last = behind[0][ends], behind[1][ends]
    newline = seps == _NEWLINE
    if last.max() >= 10 or not np.all(newline | (seps == _COMMA)):
        raise _NotPlain
    rows = int(np.count_nonzero(newline))
    if len(ends) != rows * body.want or not newline[body.want - 1::body.want].all():
        raise body.bad_width(np.diff(np.flatnonzero(newline), prepend=-1), row)
    tens, hundreds = behind[2][ends], behind[3][ends]
    has_tens = tens < 10
    has_hundreds = has_tens & (hundreds < 10)
    values = last.astype(np.uint16)
    values += tens * has_tens * np.uint16(10)
    values += hundreds * has_hundreds * np.uint16(100)
    longer = np.flatnonzero(has_hundreds & (behind[4][ends] < 10))
    if len(longer):  # over three digits: leading zeros, or too large
        values = values.astype(np.float64)
        for cell in longer:  # behind[0][i] is raw[lo + i]
            begin = lo + int(ends[cell - 1]) + 1 if cell else lo
            values[cell] = float(body.raw[begin:lo + int(ends[cell])])
    return values.reshape(rows, body.want), rows


def _parse_general(body: _CsvBody, row: int, lo: int, hi: int) -> tuple[np.ndarray, int]:
    """Lines ``raw[lo:hi]`` of anything ``np.loadtxt`` reads (spaces, decimals, blank
    lines) -> ``(rows, want) float64`` of whole numbers, and the number of lines."""
    text = body.raw[lo:hi].decode("utf-8", errors="replace")
    try:
        table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        lines = text.split("\n")
        bad = next((i for i, line in enumerate(lines) if len(line.split(",")) != body.want),
                   None)
        if bad is not None:
            raise body.error(f"line {row + bad + 1 + body.skipped} has "
                             f"{len(lines[bad].split(','))} columns, expected "
                             f"{body.want}") from exc
        raise body.error(f"non-numeric value {_first_non_number(lines, row + 1 + body.skipped)}"
                         ) from exc
    if table.shape[1] != body.want:
        raise body.error(f"rows have {table.shape[1]} columns; expected {body.want}")
    if not np.all(np.isfinite(table)) or np.any(table != np.round(table)):
        raise body.error("values must be whole numbers")
    return table, text.count("\n") + 1


def _first_non_number(lines: list[str], first_line: int) -> str:
    """Where the first cell of ``lines`` (numbered from ``first_line``) that is not a
    number is, for a message."""
    for i, line in enumerate(lines):
        for j, cell in enumerate(line.split(",")):
            if not _is_number(cell):
                return f"{cell.strip()!r} on line {first_line + i}, column {j + 1}"
    return "in the file"  # not reached: loadtxt failed on some cell


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_csv(path: str | Path, labeled: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read one MNIST CSV file; see :func:`parse_csv`."""
    path = Path(path)
    return parse_csv(read_bytes(path), str(path), labeled)


def load_csv_folder(folder: Path):
    """``x_train, y_train, x_test, y_test, source`` from the first Kaggle CSV pair in
    ``folder`` (``mnist_train.csv``, else ``train.csv``); None when neither is there."""
    pairs = [("mnist_train.csv", "mnist_test.csv"), ("train.csv", "test.csv")]
    for train_name, test_name in pairs:
        train = folder / train_name
        if not train.is_file():
            continue
        x_train, y_train = load_csv(train, labeled=True)
        test = folder / test_name
        if train_name == "mnist_train.csv" and test.is_file():
            x_test, y_test = load_csv(test, labeled=True)
        else:
            # Kaggle's Digit Recognizer test.csv has no labels, so a labeled test set is
            # carved from train.csv with a fixed seed; its unlabeled test.csv is for submissions.
            order = np.random.default_rng(12345).permutation(len(x_train))
            n_test = max(1, len(x_train) // 6)
            x_test, y_test = x_train[order[:n_test]], y_train[order[:n_test]]
            x_train, y_train = x_train[order[n_test:]], y_train[order[n_test:]]
        return x_train, y_train, x_test, y_test, str(train)
    return None

