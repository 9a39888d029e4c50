"""Weight versions of a loaded bundle: the snapshot a version is, and the two slots beside the
live one (docs/api.md "Weight versions", docs/internals.md "Runtime").

Every snapshot the runtime publishes carries its version number, so a reader that took the
snapshot reference once knows which version served it without a lock. Besides the live
snapshot a bundle retains at most one other: the version staged for a commit, or the one a
commit replaced (for `rollback`). Staging gives up the retained one first, so its buffers can
hold the new version (double buffering: never more than two weight sets).

A version staged with `copy=False` adopts the caller's arrays instead (`adopted`): read-only
views of them become its variables, so the memory is the caller's (e.g. Ray's object store,
shared by every replica on a node), held as long as a version refers to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from wrc.abi import FunctionPlan, Weight
from wrc.errors import InputError, VersionError


class Snapshot(dict[str, Any]):
    """Variable name → array, never mutated once published, with the version it is and its
    live adapter (`wrc.adapters.AdapterState`, None without one)."""

    __slots__ = ("version", "adapter")

    def __init__(self, values: dict[str, Any], version: int, adapter: Any = None) -> None:
        super().__init__(values)
        self.version = version
        self.adapter = adapter


@dataclass(frozen=True)
class Prepared:
    """A snapshot made beside `base` (the live one when it was made), not yet published."""

    snapshot: Snapshot
    base: Snapshot
    changed: tuple[str, ...]  # the variables (derived ones included) whose arrays are new
    adopted: bool = False  # its weights' arrays are the caller's (`stage(copy=False)`)


class VersionSlots:
    """Version numbers and the one retained non-live snapshot: staged or previous.

    Callers hold the bundle's write lock; a reader never looks here.
    """

    def __init__(self) -> None:
        self.last = 0  # the highest version number handed out (the loaded state is 0)
        self.staged: Prepared | None = None
        self.previous: Prepared | None = None  # .snapshot: the version a commit replaced

    def next(self) -> int:
        self.last += 1
        return self.last

    def release(self) -> Prepared | None:
        """Give up the retained snapshot (before making a new one); returns a staged one so its
        arrays can serve as buffers again."""
        staged, self.staged, self.previous = self.staged, None, None
        return staged

    def take_staged(self, version: int, live: Snapshot) -> Prepared | None:
        """The staged snapshot `version` to publish over `live`; None when it is live already."""
        if isinstance(version, bool) or not isinstance(version, int):
            raise VersionError(f"commit() takes a version number from stage(), got {type(version).__name__}")
        if version == live.version:
            return None
        staged = self.staged
        if staged is None or staged.snapshot.version != version:
            now = f"staged: version {staged.snapshot.version}" if staged else "nothing is staged"
            if 0 <= version <= self.last:
                raise VersionError(f"commit({version}): version {version} is no longer staged "
                                   f"(live: version {live.version}; {now}); stage the weights again")
            raise VersionError(f"commit({version}): no such version (live: version {live.version}; {now})")
        if staged.base is not live:  # defensive: every writer releases the staged slot first
            raise VersionError(f"commit({version}): version {version} was staged on version "
                               f"{staged.base.version}, but version {live.version} is live; stage again")
        self.staged = None
        return staged

    def take_previous(self, live: Snapshot) -> Prepared:
        """The version to roll back to (its `snapshot`); the live one's arrays are `changed`."""
        prev = self.previous
        if prev is None:
            raise VersionError(f"rollback(): no previous version is retained (live: version "
                               f"{live.version}); a rollback, or staging a new version, gives it up")
        self.previous = None
        return prev


def plain_copies(upd: FunctionPlan) -> bool:
    """Whether the update graph only copies each given weight whole into its variable: then
    adopting the weight's array is what running it would produce."""
    targets = set(upd.targets.items())
    return all(w.full and w.guards is not None and len(w.guards) == 1 and w.guards[0][1]
               and (w.guards[0][0], w.var) in targets for w in upd.writes) and len(upd.writes) == len(targets)


def adopted(values: list[tuple[Weight, Any]], method: str) -> dict[str, np.ndarray]:
    """Variable → a read-only view of each checked weight's array, to serve as its value
    without a copy; `InputError` naming every array that cannot (nothing changes)."""
    out: dict[str, np.ndarray] = {}
    problems = []
    for w, arr in values:
        what = f"weight {w.name!r}"
        if not isinstance(arr, np.ndarray):
            problems.append(f"{what}: copy=False adopts NumPy arrays only, got {type(arr).__name__}")
        elif not arr.flags.c_contiguous:
            problems.append(f"{what}: copy=False needs a C-contiguous array (np.ascontiguousarray)")
        elif not arr.flags.aligned:
            problems.append(f"{what}: copy=False needs an array aligned for {arr.dtype}")
        else:
            view = arr.view(np.ndarray)  # ours: read-only whatever the caller's flags are
            view.flags.writeable = False
            out[w.variable] = view
    if problems:
        raise InputError(f"{method}(copy=False) changed nothing: " + "; ".join(problems))
    return out
