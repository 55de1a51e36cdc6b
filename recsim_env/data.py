"""Datasets in RecBole's atomic format, with chronological histories and a user split.

An atomic dataset is a folder ``<name>/`` holding ``<name>.inter`` (required), and optionally
``<name>.item`` and ``<name>.user``. Each file is tab-separated with a typed header
``field:type`` where type is one of ``token``, ``token_seq``, ``float``, ``float_seq``.

``load_dataset("ml-100k")`` resolves to the copy shipped inside the installed ``recbole``
wheel (nothing is downloaded, nothing is copied into this repository); any other string is read
as a directory path.

Watch ratios. Where ``.inter`` has play time and duration columns, the watch ratio is
``play_time / duration`` (real). Otherwise, where it has ratings, the ratio is a *proxy*:
``(rating - min_rating) / (max_rating - min_rating)``, so on MovieLens (1-5 stars) ratings map to
0, 0.25, 0.5, 0.75, 1.0. With the default thresholds this makes ``rating <= 2`` a fast skip
(ratio < 0.3) and ``rating >= 4`` a like (ratio >= 0.7). Both thresholds live in
:class:`FeedbackThresholds` and can be changed.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "AtomicFileError",
    "Dataset",
    "FeedbackThresholds",
    "cache_dir",
    "load_dataset",
    "read_atomic_file",
    "resolve_dataset_dir",
]

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
SHIPPED_IN_RECBOLE = ("ml-100k",)


class AtomicFileError(ValueError):
    """A RecBole atomic file is malformed; the message names file, line and field."""


@dataclass(frozen=True)
class FeedbackThresholds:
    """Where watch ratios turn into fast skips and likes.

    skip_below: a played item with watch ratio below this is a fast skip (G-UBS: 0.3).
    like_at: a played item with watch ratio at or above this is liked (MovieLens proxy: rating >= 4).
    """

    skip_below: float = 0.3
    like_at: float = 0.7

    def __post_init__(self) -> None:
        if not 0.0 <= self.skip_below < self.like_at:
            raise ValueError(
                f"FeedbackThresholds needs 0 <= skip_below < like_at, got skip_below={self.skip_below}, "
                f"like_at={self.like_at}."
            )


@dataclass
class AtomicTable:
    """Columns of one atomic file: name -> list of raw values (str, float, or list of them)."""

    path: Path
    types: dict[str, str]
    columns: dict[str, list]
    n_rows: int
    line_numbers: list[int]


def _parse_header(path: Path, header: str) -> dict[str, str]:
    types: dict[str, str] = {}
    for col, spec in enumerate(header.rstrip("\n\r").split("\t"), start=1):
        name, sep, ftype = spec.rpartition(":")
        if not sep or not name or ftype not in FIELD_TYPES:
            raise AtomicFileError(
                f"{path}, line 1, column {col}: header field {spec!r} is not 'name:type' with type in "
                f"{FIELD_TYPES}. Fix the header, e.g. 'user_id:token\\titem_id:token\\trating:float'."
            )
        if name in types:
            raise AtomicFileError(f"{path}, line 1: field {name!r} appears twice in the header.")
        types[name] = ftype
    return types


def read_atomic_file(path: str | os.PathLike, required: tuple[str, ...] = ()) -> AtomicTable:
    """Read one atomic file; every problem is reported with file, line and field."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 byte-order mark (spreadsheet exports) is dropped
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise AtomicFileError(
            f"{path}, line {line}: byte {raw[e.start:e.start + 1]!r} is not UTF-8; atomic files must be UTF-8 text. "
            f"Convert the file, e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed && mv fixed {path.name}`."
        ) from None
    lines = text.splitlines()
    if not lines or not any(line.strip() for line in lines):
        raise AtomicFileError(f"{path}, line 1: file is empty; expected a header like 'user_id:token\\t...'.")
    if not lines[0].strip():
        raise AtomicFileError(f"{path}, line 1: the first line is blank; the header ('user_id:token\\t...') must be the "
                              f"first line. Remove the blank line(s) above it.")
    nul = next((i for i, line in enumerate(lines, start=1) if "\x00" in line), None)
    if nul is not None:
        raise AtomicFileError(f"{path}, line {nul}: contains a NUL byte; atomic files are tab-separated text.")
    types = _parse_header(path, lines[0])
    missing = [r for r in required if r not in types]
    if missing:
        raise AtomicFileError(
            f"{path}, line 1: required field(s) {missing} missing from header {list(types)}. "
            f"Rename the columns or pass the field names to load_dataset(...)."
        )
    names = list(types)
    columns: dict[str, list] = {n: [] for n in names}
    line_numbers: list[int] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != len(names):
            raise AtomicFileError(
                f"{path}, line {lineno}: expected {len(names)} tab-separated fields {names}, got {len(parts)}."
            )
        for name, raw in zip(names, parts):
            ftype = types[name]
            if ftype == "token":
                columns[name].append(raw)
            elif ftype == "token_seq":
                columns[name].append(raw.split())
            else:
                try:
                    value = float(raw) if ftype == "float" else [float(v) for v in raw.split()]
                except ValueError:
                    raise AtomicFileError(
                        f"{path}, line {lineno}, field {name!r}: {raw!r} is not a number ({ftype})."
                    ) from None
                if ftype == "float" and not np.isfinite(value):
                    raise AtomicFileError(f"{path}, line {lineno}, field {name!r}: {raw!r} is not finite.")
                columns[name].append(value)
        line_numbers.append(lineno)
    if not line_numbers:
        raise AtomicFileError(f"{path}: header only, no data rows.")
    return AtomicTable(path=path, types=types, columns=columns, n_rows=len(line_numbers), line_numbers=line_numbers)


def cache_dir() -> Path:
    """Where the package caches what it builds (converted models, trained backbones):
    ``$RECSIM_CACHE`` or ``~/.cache/recsim_env``."""
    return Path(os.environ.get("RECSIM_CACHE", Path.home() / ".cache" / "recsim_env"))


def resolve_dataset_dir(dataset: str | os.PathLike) -> Path:
    """Map a dataset name or directory to the folder that holds its atomic files."""
    if str(dataset) in SHIPPED_IN_RECBOLE and not Path(dataset).is_dir():
        spec = importlib.util.find_spec("recbole")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"dataset={dataset!r} is read from the copy inside the 'recbole' wheel, which is not "
                f"installed. Install it with `pip install --no-deps recbole==1.2.1` (or run `make setup`), "
                f"or pass dataset=<directory with {dataset}.inter>."
            )
        path = Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / str(dataset)
    else:
        path = Path(dataset).expanduser()
    inter = path / f"{path.name}.inter"
    if not inter.is_file():
        raise FileNotFoundError(
            f"No atomic dataset at {path}: expected {inter}. Pass dataset='ml-100k' or a directory "
            f"'<name>/' containing '<name>.inter' (and optionally .item/.user) in RecBole atomic format."
        )
    return path


@dataclass(eq=False)  # identity hash: datasets key per-process caches
class Dataset:
    """Users, items and chronological interactions of one atomic dataset, with a user split.

    Ids are contiguous indices: users ``0..n_users-1`` and items ``0..n_items-1``;
    ``user_tokens``/``item_tokens`` hold the raw ids. Per-user histories are the index ranges
    ``inter_*[user_ptr[u]:user_ptr[u+1]]``, sorted by timestamp (file order breaks ties).
    """

    name: str
    path: Path
    user_tokens: list[str]
    item_tokens: list[str]
    inter_user: np.ndarray
    inter_item: np.ndarray
    inter_time: np.ndarray
    inter_rating: np.ndarray  # NaN where unknown
    inter_watch_ratio: np.ndarray  # real or proxy, NaN where unknown
    watch_ratio_source: str  # "play_time/duration", "rating proxy" or "none"
    user_ptr: np.ndarray
    item_fields: dict[str, list] = field(default_factory=dict)
    item_field_types: dict[str, str] = field(default_factory=dict)
    user_fields: dict[str, list] = field(default_factory=dict)
    user_field_types: dict[str, str] = field(default_factory=dict)
    split: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))  # 0 train, 1 valid, 2 test
    rating_range: tuple[float, float] | None = None
    thresholds: FeedbackThresholds = field(default_factory=FeedbackThresholds)

    SPLITS = {"train": 0, "valid": 1, "test": 2}

    @property
    def n_users(self) -> int:
        return len(self.user_tokens)

    @property
    def n_items(self) -> int:
        return len(self.item_tokens)

    @property
    def n_interactions(self) -> int:
        return len(self.inter_item)

    @property
    def has_ratings(self) -> bool:
        return self.rating_range is not None

    def history(self, user: int) -> slice:
        """Index range of ``user``'s interactions in chronological order."""
        return slice(int(self.user_ptr[user]), int(self.user_ptr[user + 1]))

    def users(self, split: str = "all") -> np.ndarray:
        """User indices of one split ('train', 'valid', 'test') or of all users ('all')."""
        if split == "all":
            return np.arange(self.n_users)
        if split not in self.SPLITS:
            raise ValueError(f"split must be one of 'train', 'valid', 'test', 'all'; got {split!r}.")
        return np.flatnonzero(self.split == self.SPLITS[split])

    def interactions_of(self, split: str) -> np.ndarray:
        """Interaction indices whose user is in ``split``."""
        return np.flatnonzero(np.isin(self.inter_user, self.users(split)))

    def fingerprint(self) -> str:
        """A content hash of everything loaded (interactions, ids, side fields, split, thresholds): disk caches of what
        is built from a dataset (the fitted user model) are keyed by it, so edited data is never read stale."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            import hashlib

            h = hashlib.sha256()
            for arr in (self.inter_user, self.inter_item, self.inter_time, self.inter_rating, self.inter_watch_ratio,
                        self.user_ptr, self.split):
                h.update(np.ascontiguousarray(arr).tobytes())
            for part in (self.name, self.watch_ratio_source, self.user_tokens, self.item_tokens, self.item_fields,
                         self.item_field_types, self.user_fields, self.user_field_types, self.rating_range, self.thresholds):
                h.update(repr(part).encode() + b"\x00")
            cached = self.__dict__["_fingerprint"] = h.hexdigest()[:24]
        return cached

    def rating_of_ratio(self, ratio: np.ndarray) -> np.ndarray:
        """Invert the rating proxy (NaN when the dataset has no ratings or the ratio is real)."""
        ratio = np.asarray(ratio, dtype=np.float64)
        if self.watch_ratio_source != "rating proxy" or self.rating_range is None:
            return np.full(ratio.shape, np.nan)
        lo, hi = self.rating_range
        return lo + ratio * (hi - lo)


def _index_tokens(tokens: list[str]) -> tuple[list[str], dict[str, int]]:
    index: dict[str, int] = {}
    for tok in tokens:
        if tok not in index:
            index[tok] = len(index)
    return list(index), index


def _split_users(n_users: int, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}.")
    order = np.random.default_rng(seed).permutation(n_users)
    n_train = int(round(fractions[0] * n_users))
    n_valid = int(round(fractions[1] * n_users))
    split = np.full(n_users, 2, dtype=np.int8)
    split[order[:n_train]] = 0
    split[order[n_train : n_train + n_valid]] = 1
    return split


def _check_ids(table: AtomicTable, id_field: str) -> None:
    """Ids must be plain tokens: non-empty, without surrounding whitespace (``" 7"`` and ``"7"`` would be two users)."""
    if table.types[id_field] != "token":
        raise AtomicFileError(f"{table.path}, line 1, field {id_field!r}: an id field must have type token, header says "
                              f"{table.types[id_field]!r}. Write it as '{id_field}:token'.")
    for row, tok in enumerate(table.columns[id_field]):
        if not tok or tok != tok.strip():
            what = "is empty" if not tok.strip() else "has leading or trailing whitespace"
            raise AtomicFileError(f"{table.path}, line {table.line_numbers[row]}, field {id_field!r}: id {tok!r} {what}; "
                                  f"ids must be non-empty tokens without surrounding spaces.")


def _entities(file: Path, id_field: str, inter: AtomicTable):
    """Ids (in file order) and side fields of an optional .item/.user file; ids of .inter if absent."""
    if not file.is_file():
        tokens, index = _index_tokens(inter.columns[id_field])
        return tokens, index, {}, {}, file
    table = read_atomic_file(file, required=(id_field,))
    _check_ids(table, id_field)
    tokens, index = _index_tokens(table.columns[id_field])
    if len(tokens) != table.n_rows:
        row = next(r for r, t in enumerate(table.columns[id_field]) if index[t] != r)
        raise AtomicFileError(
            f"{file}, line {table.line_numbers[row]}, field {id_field!r}: id {table.columns[id_field][row]!r} "
            f"appears on more than one line."
        )
    fields_ = {k: v for k, v in table.columns.items() if k != id_field}
    types = {k: v for k, v in table.types.items() if k != id_field}
    return tokens, index, fields_, types, file


def load_dataset(
    dataset: str | os.PathLike = "ml-100k",
    *,
    user_field: str = "user_id",
    item_field: str = "item_id",
    rating_field: str = "rating",
    time_field: str = "timestamp",
    play_time_field: str = "play_time",
    duration_field: str = "duration",
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    split_seed: int = 2026,
    thresholds: FeedbackThresholds = FeedbackThresholds(),
) -> Dataset:
    """Load an atomic dataset (cached per process: later calls with the same arguments and unchanged files are free;
    the cache key holds each file's size and modification time, so edited files are read again)."""
    path = resolve_dataset_dir(dataset)
    return _load_cached(
        str(path.resolve()), _file_stamps(path), user_field, item_field, rating_field, time_field, play_time_field,
        duration_field, tuple(split_fractions), split_seed, thresholds,
    )


def _file_stamps(path: Path) -> tuple:
    """(file name, size, mtime in ns) of a dataset's atomic files: part of the load cache's key."""
    out = []
    for ext in ("inter", "item", "user"):
        f = path / f"{path.name}.{ext}"
        if f.is_file():
            st = f.stat()
            out.append((ext, st.st_size, st.st_mtime_ns))
    return tuple(out)


@functools.lru_cache(maxsize=8)
def _load_cached(
    path_str: str, file_stamps: tuple, user_field: str, item_field: str, rating_field: str, time_field: str,
    play_time_field: str, duration_field: str, split_fractions: tuple[float, float, float],
    split_seed: int, thresholds: FeedbackThresholds,
) -> Dataset:
    path = Path(path_str)
    name = path.name
    inter = read_atomic_file(path / f"{name}.inter", required=(user_field, item_field))
    _check_ids(inter, user_field)
    _check_ids(inter, item_field)
    for fname in (rating_field, time_field, play_time_field, duration_field):
        if fname in inter.types and inter.types[fname] != "float":
            raise AtomicFileError(
                f"{inter.path}, line 1, field {fname!r}: expected type float, header says {inter.types[fname]!r}."
            )

    item_tokens, item_index, item_fields, item_types, item_file = _entities(path / f"{name}.item", item_field, inter)
    user_tokens, user_index, user_fields, user_types, user_file = _entities(path / f"{name}.user", user_field, inter)

    def to_index(tokens: list[str], index: dict[str, int], field_name: str, where: Path) -> np.ndarray:
        out = np.empty(len(tokens), dtype=np.int64)
        for row, tok in enumerate(tokens):
            idx = index.get(tok)
            if idx is None:
                raise AtomicFileError(
                    f"{inter.path}, line {inter.line_numbers[row]}, field {field_name!r}: id {tok!r} is "
                    f"not listed in {where}. Add it there or drop the interaction."
                )
            out[row] = idx
        return out

    inter_user = to_index(inter.columns[user_field], user_index, user_field, user_file)
    inter_item = to_index(inter.columns[item_field], item_index, item_field, item_file)
    n = inter.n_rows
    inter_time = (
        np.asarray(inter.columns[time_field], dtype=np.float64) if time_field in inter.types else np.arange(n, dtype=np.float64)
    )
    rating = np.asarray(inter.columns[rating_field], dtype=np.float64) if rating_field in inter.types else np.full(n, np.nan)
    rating_range = (float(rating.min()), float(rating.max())) if rating_field in inter.types else None
    if rating_range is not None and rating_range[0] == rating_range[1]:
        rating_range = None  # implicit feedback written as a constant rating

    if play_time_field in inter.types and duration_field in inter.types:
        play = np.asarray(inter.columns[play_time_field], dtype=np.float64)
        dur = np.asarray(inter.columns[duration_field], dtype=np.float64)
        for values, fname, ok, need in ((dur, duration_field, dur > 0, "> 0"), (play, play_time_field, play >= 0, ">= 0")):
            bad = np.flatnonzero(~ok)
            if len(bad):
                raise AtomicFileError(
                    f"{inter.path}, line {inter.line_numbers[bad[0]]}, field {fname!r}: {values[bad[0]]} must be {need} "
                    f"to give a watch ratio."
                )
        ratio = np.clip(play / dur, 0.0, None)
        source = "play_time/duration"
    elif rating_range is not None:
        lo, hi = rating_range
        ratio = (rating - lo) / (hi - lo)
        source = "rating proxy"
    else:
        ratio = np.full(n, np.nan)
        source = "none"

    order = np.lexsort((np.arange(n), inter_time, inter_user))
    counts = np.bincount(inter_user, minlength=len(user_tokens))
    user_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Dataset(
        name=name,
        path=path,
        user_tokens=user_tokens,
        item_tokens=item_tokens,
        inter_user=inter_user[order],
        inter_item=inter_item[order],
        inter_time=inter_time[order],
        inter_rating=rating[order],
        inter_watch_ratio=ratio[order],
        watch_ratio_source=source,
        user_ptr=user_ptr,
        item_fields=item_fields,
        item_field_types=item_types,
        user_fields=user_fields,
        user_field_types=user_types,
        split=_split_users(len(user_tokens), split_fractions, split_seed),
        rating_range=rating_range,
        thresholds=thresholds,
    )
