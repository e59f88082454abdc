"""MNIST as CSV: the streaming parser (label then 784 pixels, or pixels only, header
optional) and the Kaggle folders (``mnist_train.csv``/``mnist_test.csv``, Digit Recognizer's
``train.csv``).

Images come back as ``(N, 28, 28) uint8 in [0, 255]``, labels as ``(N,) uint8 in [0, 9]``;
anything else raises :class:`~mnist_core.datasets.common.DataError` naming the file and line.

The parser reads its input a block of whole lines at a time and holds at most one block
beside the result, so its work is bounded by :class:`CsvLimits` whatever it is handed: a
line, a cell, the rows, the bytes read (after unpacking) and the parsing thread's CPU
seconds each have a limit, checked as the bytes arrive, and the first one passed stops the
parse with a message (a 200 MB line of ``0,`` is refused after 16 KB of it).
"""

from __future__ import annotations

import io
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .common import IMAGE_SHAPE, N_PIXELS, DataError, open_unpacked


@dataclass(frozen=True)
class CsvLimits:
    """The most one CSV may make the parser do; ``None``: no limit."""

    max_line_bytes: int = 16_384     # a row of 785 "255," is 3,140 bytes: room for spaces
                                     # and decimals, not for a runaway line
    max_cell_bytes: int = 32         # "255", " 0.000000e+00": a longer cell is not a pixel
    max_rows: int | None = 1_000_000   # data rows (MNIST's train.csv has 60,000)
    max_bytes: int | None = 2 * 2**30  # CSV bytes read, after unpacking
    max_cpu_s: float | None = None   # CPU seconds of the parsing thread


FILE_LIMITS = CsvLimits()   # a file on the command line: the user's own, generous limits


def _size(n: int) -> str:
    if n < 2**10:
        return f"{n} bytes"
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


class _Lines:
    """``stream``'s bytes as blocks of whole lines (about :data:`CSV_BLOCK_BYTES` each, the
    last one perhaps without its newline), CRs and a BOM removed, every limit of ``limits``
    but the cells' checked as they are read. ``lines``: complete lines handed out so far."""

    def __init__(self, stream: BinaryIO, name: str, limits: CsvLimits):
        self.stream, self.name, self.limits = stream, name, limits
        self.lines = 0
        self.total = 0
        self.started = time.thread_time()

    def error(self, problem: str) -> DataError:
        return DataError(f"{self.name}: {problem}")

    def check_cpu(self) -> None:
        cap = self.limits.max_cpu_s
        if cap is not None and time.thread_time() - self.started > cap:
            raise self.error(f"reading it took more than {cap:g} s of CPU time, the limit "
                             f"here; after {self.lines:,} lines")

    def _read(self) -> bytes:
        try:
            chunk = self.stream.read(CSV_BLOCK_BYTES)
            if chunk.endswith(b"\r"):   # keep a CRLF in one block
                chunk += self.stream.read(1)
        except DataError:
            raise
        except (OSError, EOFError, ValueError, RuntimeError, zlib.error,
                zipfile.BadZipFile) as exc:   # damaged compressed data, read as it unpacks
            raise self.error(f"could not be read to the end ({type(exc).__name__}: "
                             f"{str(exc)[:120]})") from exc
        self.total += len(chunk)
        cap = self.limits.max_bytes
        if cap is not None and self.total > cap:
            raise self.error(f"holds more than {_size(cap)} of CSV, the limit here")
        return chunk

    def blocks(self):
        carry, first = b"", True
        while True:
            chunk = self._read()
            if first and chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
            first = False
            if b"\r" in chunk:
                chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if not chunk:
                if carry:
                    self._check_line(carry)
                    yield carry
                return
            buf = carry + chunk if carry else chunk
            cut = buf.rfind(b"\n")
            if cut < 0:
                carry = buf
                self._check_line(carry)
                continue
            block, carry = buf[:cut + 1], buf[cut + 1:]
            self._check_line(carry)
            self._check_block(block)
            yield block
            self.lines += block.count(b"\n")
            self.check_cpu()

    def _check_line(self, partial: bytes) -> None:
        cap = self.limits.max_line_bytes
        if len(partial) > cap:
            raise self.error(f"line {self.lines + 1} is longer than {_size(cap)}; a row of "
                             f"785 numbers is at most about 3 KB")

    def _check_block(self, block: bytes) -> None:
        """Every line and cell of ``block`` (whole lines) within the limits, vectorised."""
        b = np.frombuffer(block, np.uint8)
        newlines = np.flatnonzero(b == 10)
        widths = np.diff(newlines, prepend=-1) - 1
        cap = self.limits.max_line_bytes
        if len(widths) and widths.max() > cap:
            raise self.error(f"line {self.lines + int(np.argmax(widths > cap)) + 1} is longer "
                             f"than {_size(cap)}; a row of 785 numbers is at most about 3 KB")
        seps = np.flatnonzero((b == 10) | (b == 44))
        cells = np.diff(seps, prepend=-1) - 1
        cap = self.limits.max_cell_bytes
        if len(cells) and cells.max() > cap:
            at = int(seps[int(np.argmax(cells > cap))])
            line = self.lines + int(np.count_nonzero(b[:at] == 10)) + 1
            raise self.error(f"line {line} has a value longer than {cap} characters; "
                             f"pixels are numbers from 0 to 255")
        rows = self.limits.max_rows
        if rows is not None and self.lines + len(newlines) > rows + 1:   # + a header
            raise self.error(f"more than {rows:,} rows, the limit here")


def parse_csv(data: bytes | str | BinaryIO, name: str = "<csv>",
              labeled: bool | None = None, limits: CsvLimits = FILE_LIMITS,
              refuse_labeled: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse MNIST-as-CSV: rows of ``label, p0..p783`` or, unlabeled, ``p0..p783``.

    ``data``: the bytes, text, or a binary stream read a block at a time. A header row is
    detected and skipped. ``labeled=None`` infers labels from the column count (785 ->
    labeled, 784 -> unlabeled); ``refuse_labeled``, when given, is the problem raised as
    soon as the file turns out to be labeled. Returns ``(N, 28, 28) uint8`` images and
    ``(N,) uint8`` labels (``None`` when unlabeled). Raises :class:`DataError` naming the
    file and the first offending line, or the first of ``limits`` passed.

    Blocks of plain digits, commas and newlines (every MNIST CSV seen, Kaggle's included)
    are parsed straight from the bytes into ``uint8`` (:func:`_parse_digits`): Kaggle's
    28,000-row ``test.csv`` in well under a second, a few MB of memory beyond the result.
    A block with anything else that may still be numbers (spaces, decimals, signs, blank
    lines) goes through ``np.loadtxt`` (:func:`_parse_general`).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    lines = _Lines(stream, name, limits)
    body: _CsvBody | None = None
    checks: _RangeChecks | None = None
    parts: list[np.ndarray] = []
    skipped: int | None = None   # header lines: None until the first line is seen
    for block in lines.blocks():
        start, row = 0, lines.lines - (skipped or 0)   # data lines before this block
        if body is None:
            if skipped is None:
                if not block.strip():
                    continue
                cut = block.find(b"\n")
                first_line = block[:cut if cut >= 0 else len(block)].decode("utf-8", "replace")
                first = [c.strip().strip('"') for c in first_line.split(",")]
                if not all(_is_number(c) for c in first if c):
                    if (len(first) == N_PIXELS + 1
                            and first[0].lower() not in ("label", "labels", "y", "class")):
                        raise DataError(f"{name}: header's first column is {first[0]!r}; "
                                        f"expected 'label'")
                    if refuse_labeled and first[0].lower() in ("label", "labels"):
                        raise DataError(f"{name}: {refuse_labeled}")
                    skipped = 1
                    start = cut + 1 if cut >= 0 else len(block)
                else:
                    skipped = 0
                row = lines.lines
            rest = block[start:]
            if not rest.strip():
                continue
            line_end = rest.find(b"\n")
            n_cols = rest.count(b",", 0, line_end if line_end >= 0 else len(rest)) + 1
            if labeled is None:
                if n_cols not in (N_PIXELS, N_PIXELS + 1):
                    raise DataError(f"{name}: rows have {n_cols} columns; expected 785 (label "
                                    f"+ 784 pixels) or 784 (pixels only)")
                labeled = n_cols == N_PIXELS + 1
            if labeled and refuse_labeled:
                raise DataError(f"{name}: {refuse_labeled}")
            body = _CsvBody(N_PIXELS + int(labeled), name, skipped)
            checks = _RangeChecks(labeled)
            block = rest
        parts.append(_parse_block(body, checks, block, row, sum(len(p) for p in parts)))
    if body is None:
        raise DataError(f"{name}: header only, no data rows" if skipped
                        else f"{name}: the file is empty")
    checks.raise_if_any(name)
    table = np.concatenate(parts) if len(parts) > 1 else parts[0]
    labels = None
    if labeled:
        labels, table = table[:, 0].copy(), table[:, 1:]
    return np.ascontiguousarray(table).reshape(-1, *IMAGE_SHAPE), labels


def _parse_block(body: _CsvBody, checks: _RangeChecks, block: bytes, row: int,
                 n: int) -> np.ndarray:
    """One block of whole lines (``row`` data lines and ``n`` data rows before it) ->
    ``(rows, want) uint8`` (zeros once a value is out of range: the file is refused)."""
    block = block.rstrip(b" \t\n")   # trailing blank lines: none of a plain block's business
    if not block:
        return np.zeros((0, body.want), np.uint8)
    try:
        values = _parse_digits(body, row, block)
    except _NotPlain:
        values = _parse_general(body, row, block)
    checks.add(n, values)
    if checks.failed:
        return np.zeros((len(values), body.want), np.uint8)
    return values.astype(np.uint8)


@dataclass(frozen=True)
class _CsvBody:
    """The data rows of a CSV: ``want`` columns a row, after ``skipped`` lines (the
    header), for line numbers in messages."""

    want: int
    name: str
    skipped: int

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
        if pixels.size:
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
# Cells of over three digits that are not zero-padded (so over 255: the file is refused)
# read exactly per block, for the range the message reports; the rest count as 1000.
EXACT_LARGE_CELLS = 16


class _NotPlain(Exception):
    """The block holds more than digits, commas and newlines: parse it the general way."""


# Bytes minus ord("0") as uint8: digits are 0-9, everything else wraps around to >= 10.
_COMMA, _NEWLINE, _EDGE = (ord(",") - 48) % 256, (ord("\n") - 48) % 256, 255


def _parse_digits(body: _CsvBody, row: int, block: bytes) -> np.ndarray:
    """Lines of comma-separated digits (no final newline) -> ``(rows, want) uint16``
    (float64 where a cell over 255 has over three digits); raises :class:`_NotPlain` for
    any other byte, a blank line or an empty cell.

    Vectorised over the block's bytes: the separators found, each cell's value gathered
    from its last three digits; a longer cell is in range only when zero-padded, which a
    running count of non-zero digits tells for every cell at once, so no Python work per
    row or per cell (a file of ``0001`` cells costs what one of ``1`` does).
    """
    # The block's digits after four edge markers and before a final newline, so that
    # behind[k][i] is the k-th byte before separator i, with no index arithmetic.
    raw = np.frombuffer(block, np.uint8)
    digit = np.empty(len(raw) + 5, np.uint8)
    digit[:4], digit[-1] = _EDGE, _NEWLINE
    np.subtract(raw, 48, out=digit[4:-1])
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
    if len(longer):  # over three digits: zero-padded, or over 999
        nonzero = np.concatenate([[0], np.cumsum((raw >= 49) & (raw <= 57), dtype=np.int32)])
        stop = ends[longer]                                  # the cell is raw[start:stop]
        start = np.where(longer > 0, ends[np.maximum(longer - 1, 0)] + 1, 0)
        big = longer[nonzero[stop - 3] > nonzero[start]]     # a non-zero digit up front
        if len(big):
            values = values.astype(np.float64)
            values[big] = 1000.0
            for cell in big[:EXACT_LARGE_CELLS]:
                begin = int(ends[cell - 1]) + 1 if cell else 0
                values[cell] = float(block[begin:int(ends[cell])])
    return values.reshape(rows, body.want)


def _parse_general(body: _CsvBody, row: int, block: bytes) -> np.ndarray:
    """Lines of anything ``np.loadtxt`` reads (spaces, decimals, blank lines) ->
    ``(rows, want) float64`` of whole numbers."""
    text = block.decode("utf-8", errors="replace")
    try:
        table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        lines = text.split("\n")
        bad = next((i for i, line in enumerate(lines)
                    if line.strip() and len(line.split(",")) != body.want), None)
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
    return table


def _first_non_number(lines: list[str], first_line: int) -> str:
    """Where the first cell of ``lines`` (numbered from ``first_line``) that is not a
    number is, for a message."""
    for i, line in enumerate(lines):
        for j, cell in enumerate(line.split(",")):
            if not _is_number(cell):
                return f"{cell.strip()[:40]!r} on line {first_line + i}, column {j + 1}"
    return "in the file"  # not reached: loadtxt failed on some cell


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_csv(path: str | Path, labeled: bool | None = None,
             limits: CsvLimits = FILE_LIMITS) -> tuple[np.ndarray, np.ndarray | None]:
    """Read one MNIST CSV file (gzipped or not), a block at a time; see :func:`parse_csv`."""
    path = Path(path)
    with open_unpacked(path) as stream:
        return parse_csv(stream, str(path), labeled, limits)


def load_csv_folder(folder: Path, train_name: str | None = None):
    """``x_train, y_train, x_test, y_test, source`` from the first Kaggle CSV pair in
    ``folder`` (``mnist_train.csv``, else ``train.csv``; or ``train_name`` when given, its
    test file ``mnist_test.csv`` beside ``mnist_train.csv``, else carved from it); None
    when there is none."""
    pairs = [("mnist_train.csv", "mnist_test.csv"), ("train.csv", "test.csv")]
    if train_name is not None:
        pairs = [p for p in pairs if p[0] == train_name] or [(train_name, None)]
    for train_name, test_name in pairs:
        train = folder / train_name
        if not train.is_file():
            continue
        x_train, y_train = load_csv(train, labeled=True)
        test = folder / test_name if test_name else None
        if train_name == "mnist_train.csv" and test is not None and test.is_file():
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
