#!/usr/bin/env python3
"""Peer benchmark harness: the same grid workloads through Python peers.

Run with the venv made by bench/peers/setup.sh:

    .bench-venv/bin/python bench/peers/peers.py --workload W1 --peer chunk_memo \
        --tmp .bench-tmp/peers [--n 1000] [--chunk 100] [--repeat 1]

Prints exactly ONE JSON line on stdout (everything the peers print goes to
stderr). Common fields:

    {"workload": "W1", "peer": "chunk_memo", "ms": <float|null>,
     "points": <int>, "executed": <int|null>, "note": "...", ...extras}

Peers:
  chunk_memo  PyPI chunk-memo==0.1.5 (ChunkCache + run / run_parallel /
              ChunkCache.cache_status / ChunkCache.slice /
              ChunkCache.extend_axis_values, as found in its 0.1.5 source).
  joblib      joblib.Memory. A user of joblib would memoize one function per
              memo chunk: ``@memory.cache def grid_chunk(a_vals, b_vals)``
              returning the chunk's point outputs in product order (a outer,
              b inner). The harness enumerates the same chunks as chunk-memo
              and calls that function once per chunk; a subset is served by
              calling the chunk functions that hold requested points and
              slicing their outputs.

Workloads (axes a = range(n), b = range(n), point -> {"a", "b", "v": a*0.5+b}):
  W1 cold    whole grid into a fresh cache dir; timed: open cache + run + store.
  W2 warm    whole grid from the cache W1 left in the same --tmp (the harness
             fills it in an untimed step if missing); timed: open + load all.
  W3 subset  every 10th value of each axis (1% of points) from the warm cache.
  W4 status  status/plan of the whole grid on a warm cache; timed: only the
             status call. Run it with --chunk 100 and with --chunk 10 for
             n=1000 (100 and 10,000 chunks).
  W5 extend  axis a grows from n to n + n//10 values on a copy of the warm
             cache; reports how many points the peer actually executed.
  W6 parallel  CPU-bound point (~1 ms of float arithmetic, calibrated once per
             process or --iters), a = range(40), b = range(50) (2,000 points),
             memo chunks 10 x 10; serial runner vs the peer's parallel runner
             with 2 workers, each on a fresh cache. --n/--chunk are ignored.

Cache layout under --tmp: <tmp>/<peer>/grid_n{n}_c{chunk} (W1..W4),
<tmp>/<peer>/extend_n{n}_c{chunk} (W5), <tmp>/<peer>/w6_{serial,parallel}.
A grid cache is considered warm only when the marker file ".complete" exists.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import statistics
import sys
import time
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

PEERS = ("chunk_memo", "joblib")
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6")
COMPLETE_MARK = ".complete"
CACHE_ID = "bench-grid"  # chunk-memo cache_id (any non-empty string)

# W6 grid (fixed, independent of --n/--chunk)
W6_A = 40
W6_B = 50
W6_CHUNK = 10
W6_WORKERS = 2

# --------------------------------------------------------------------------
# point functions (module level so worker processes can import/pickle them)
# --------------------------------------------------------------------------

CALLS = 0  # point executions in this process (serial paths)


def reset_calls() -> None:
    global CALLS
    CALLS = 0


def point(a: int, b: int) -> dict[str, Any]:
    global CALLS
    CALLS += 1
    return {"a": a, "b": b, "v": a * 0.5 + b}


def grid_chunk(a_vals: tuple, b_vals: tuple) -> list[dict[str, Any]]:
    """joblib's unit of memoization: one memo chunk, outputs in product order."""
    return [point(a, b) for a in a_vals for b in b_vals]


def burn(iters: int, a: int, b: int) -> float:
    """Pure float arithmetic, no allocation beyond floats."""
    x = 0.5 + a * 1e-3 + b * 1e-5
    acc = 0.0
    for _ in range(iters):
        x = x * 1.0000001 + 3e-7
        acc += x * 0.5 - acc * 1e-9
    return acc


def _count(count_file: str, k: int) -> None:
    # O_APPEND writes of a few bytes are atomic enough to count executions
    # across worker processes.
    fd = os.open(count_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x" * k)
    finally:
        os.close(fd)


def cpu_point(a: int, b: int, *, iters: int, count_file: str) -> dict[str, Any]:
    _count(count_file, 1)
    return {"a": a, "b": b, "v": burn(iters, a, b)}


def cpu_chunk(a_vals: tuple, b_vals: tuple, iters: int, count_file: str) -> list:
    _count(count_file, len(a_vals) * len(b_vals))
    return [
        {"a": a, "b": b, "v": burn(iters, a, b)} for a in a_vals for b in b_vals
    ]


def calibrate(target_ms: float = 1.0) -> tuple[int, float]:
    """Iterations of burn() that take ~target_ms in this process."""
    iters = 2000
    while True:
        t0 = time.perf_counter()
        burn(iters, 1, 2)
        dt = (time.perf_counter() - t0) * 1e3
        if dt >= 20.0:
            break
        iters *= 2
    per_iter = dt / iters
    iters = max(1, int(round(target_ms / per_iter)))
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        burn(iters, 3, 4)
        samples.append((time.perf_counter() - t0) * 1e3)
    return iters, statistics.median(samples)


def count_file_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def now_ms() -> float:
    return time.perf_counter() * 1e3


def rm(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def chunks_of(values: list, size: int) -> list[tuple]:
    return [tuple(values[i : i + size]) for i in range(0, len(values), size)]


def subset_values(n: int) -> list[int]:
    return list(range(0, n, 10))


def extended_n(n: int) -> int:
    return n + max(1, n // 10)


def check_points(out: Any, pairs: set[tuple[int, int]]) -> bool:
    """Output is the right multiset of point dicts (order not checked)."""
    if not isinstance(out, list) or len(out) != len(pairs):
        return False
    seen = set()
    for item in out:
        if not isinstance(item, dict):
            return False
        a, b = item.get("a"), item.get("b")
        if item.get("v") != a * 0.5 + b:
            return False
        seen.add((a, b))
    return seen == pairs


def grid_pairs(a_vals, b_vals) -> set[tuple[int, int]]:
    return {(a, b) for a in a_vals for b in b_vals}


def peer_version(peer: str) -> str:
    dist = "chunk-memo" if peer == "chunk_memo" else "joblib"
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------
# chunk-memo 0.1.5
# --------------------------------------------------------------------------


class ChunkMemoPeer:
    name = "chunk_memo"

    def __init__(self, base: Path):
        import chunk_memo  # noqa: F401  (fail early if missing)

        self.base = base / self.name

    def grid_dir(self, n: int, chunk: int) -> Path:
        return self.base / f"grid_n{n}_c{chunk}"

    def open(self, root: Path, n_a: int, n_b: int, chunk: int, **kw):
        from chunk_memo import ChunkCache

        return ChunkCache(
            root=root,
            chunk_spec={"a": chunk, "b": chunk},
            axis_values={"a": list(range(n_a)), "b": list(range(n_b))},
            cache_id=CACHE_ID,
            verbose=0,
            **kw,
        )

    # W1 body, also used (untimed) to prepare warm caches.
    def cold(self, root: Path, n: int, chunk: int, *, batch_index: bool) -> Any:
        from chunk_memo import run

        cache = self.open(root, n, n, chunk)
        if not batch_index:
            out, _diag = run(cache, point)
            return out
        # Untimed preparation only: chunk-memo 0.1.5 re-reads and rewrites the
        # whole chunks_index.json after every chunk (quadratic in the number of
        # chunks; 10,000 chunks would take minutes). Collect the entries and
        # write the same index once, with the library's own helpers, so the
        # cache on disk is identical to what run() produces.
        from chunk_memo.cache_index import chunk_index_path, load_chunk_index
        from chunk_memo.data_write_utils import (
            _apply_payload_timestamps,
            _atomic_write_json,
        )

        pending: dict[str, Any] = {}

        def collect(chunk_hash: str, chunk_key: Any) -> None:
            entry = {"chunk_key": chunk_key}
            _apply_payload_timestamps(entry, existing=None)
            pending[chunk_hash] = entry

        out, _diag = run(cache, point, update_chunk_index=collect)
        memo_root = cache._memo_root()
        index = load_chunk_index(memo_root)
        index.update(json.loads(json.dumps(pending)))
        _atomic_write_json(chunk_index_path(memo_root), index)
        return out

    def ensure_warm(self, n: int, chunk: int) -> Path:
        root = self.grid_dir(n, chunk)
        if not (root / COMPLETE_MARK).exists():
            rm(root)
            self.cold(root, n, chunk, batch_index=True)
            (root / COMPLETE_MARK).touch()
        reset_calls()  # preparation is not part of the measured work
        return root

    def w1(self, a: argparse.Namespace) -> dict:
        root = self.grid_dir(a.n, a.chunk)
        rm(root)
        t0 = now_ms()
        out = self.cold(root, a.n, a.chunk, batch_index=False)
        ms = now_ms() - t0
        (root / COMPLETE_MARK).touch()
        return {
            "ms": ms,
            "points": len(out),
            "executed": CALLS,
            "ok": check_points(out, grid_pairs(range(a.n), range(a.n))),
            "note": "ChunkCache(chunk_spec a,b=chunk) + run(cache, point); "
            "fresh dir; one pickle per chunk plus chunks_index.json rewritten "
            "after every chunk",
        }

    def w2(self, a: argparse.Namespace) -> dict:
        from chunk_memo import run

        root = self.ensure_warm(a.n, a.chunk)
        pairs = grid_pairs(range(a.n), range(a.n))

        def once():
            cache = self.open(root, a.n, a.n, a.chunk)
            out, _ = run(cache, point)
            return out

        return timed_repeat(
            a.repeat,
            once,
            lambda out: {"points": len(out), "ok": check_points(out, pairs)},
            note="ChunkCache(...) + run(cache, point) on warm cache; "
            "outputs rebuilt from per-item sha256 maps",
        )

    def w3(self, a: argparse.Namespace) -> dict:
        from chunk_memo import run

        root = self.ensure_warm(a.n, a.chunk)
        sub = subset_values(a.n)
        pairs = grid_pairs(sub, sub)

        def once():
            cache = self.open(root, a.n, a.n, a.chunk)
            sliced = cache.slice(a=sub, b=sub)
            out, _ = run(sliced, point)
            return out

        return timed_repeat(
            a.repeat,
            once,
            lambda out: {"points": len(out), "ok": check_points(out, pairs)},
            note="ChunkCache(...).slice(a=every10th, b=every10th) + run(); "
            "loads every chunk that holds a requested point (all of them "
            "here) and picks items by sha256 item hash",
        )

    def w4(self, a: argparse.Namespace) -> dict:
        root = self.ensure_warm(a.n, a.chunk)
        samples = []
        st = None
        for _ in range(a.repeat):
            cache = self.open(root, a.n, a.n, a.chunk)
            t0 = now_ms()
            st = cache.cache_status()
            samples.append(now_ms() - t0)
        assert st is not None
        return {
            "ms": statistics.median(samples),
            "samples": samples if a.repeat > 1 else None,
            "points": a.n * a.n,
            "executed": None,
            "chunks": st["total_chunks"],
            "cached_chunks": len(st["cached_chunks"]),
            "ok": len(st["cached_chunks"]) == st["total_chunks"],
            "note": "timed ChunkCache.cache_status() only (cache construction "
            "excluded); hashes every chunk key and looks it up in "
            "chunks_index.json",
        }

    def w5(self, a: argparse.Namespace) -> dict:
        from chunk_memo import run

        warm = self.ensure_warm(a.n, a.chunk)
        root = self.base / f"extend_n{a.n}_c{a.chunk}"
        rm(root)
        shutil.copytree(warm, root)
        n2 = extended_n(a.n)
        t0 = now_ms()
        cache = self.open(root, a.n, a.n, a.chunk)
        cache.extend_axis_values({"a": list(range(a.n, n2))})
        out, diag = run(cache, point)
        ms = now_ms() - t0
        expected = (n2 - a.n) * a.n
        note = (
            "copy of warm cache (untimed); ChunkCache(...)"
            ".extend_axis_values({'a': n..1.1n}) + run(); "
            f"executed_chunks={diag.executed_chunks} cached_chunks="
            f"{diag.cached_chunks}"
        )
        if CALLS != expected:
            note += (
                f"; executed {CALLS} != {expected} new points: chunk keys are "
                "the bins' value tuples, so a partial last bin of a changes "
                "key and is recomputed"
            )
        return {
            "ms": ms,
            "points": len(out),
            "executed": CALLS,
            "expected_new": expected,
            "ok": check_points(out, grid_pairs(range(n2), range(a.n))),
            "note": note,
        }

    def w6(self, a: argparse.Namespace, iters: int) -> dict:
        from chunk_memo import ChunkCache, run, run_parallel

        res = {}
        for mode in ("serial", "parallel"):
            root = self.base / f"w6_{mode}"
            rm(root)
            root.mkdir(parents=True)
            cfile = root / "calls.count"
            fn = functools.partial(cpu_point, iters=iters, count_file=str(cfile))
            t0 = now_ms()
            cache = ChunkCache(
                root=root / "cache",
                chunk_spec={"a": W6_CHUNK, "b": W6_CHUNK},
                axis_values={"a": list(range(W6_A)), "b": list(range(W6_B))},
                cache_id=CACHE_ID,
                verbose=0,
            )
            if mode == "serial":
                out, _ = run(cache, fn)
            else:
                kwargs: dict[str, Any] = {"max_workers": W6_WORKERS}
                if a.par_chunksize:
                    kwargs["chunksize"] = a.par_chunksize
                out, _ = run_parallel(cache, fn, map_fn_kwargs=kwargs)
            res[mode] = (now_ms() - t0, len(out), count_file_size(cfile))
        return w6_result(
            res,
            note="serial: run(); parallel: run_parallel(map_fn_kwargs="
            f"{{'max_workers': {W6_WORKERS}"
            + (f", 'chunksize': {a.par_chunksize}" if a.par_chunksize else "")
            + "}) = ProcessPoolExecutor over points "
            + ("(chunksize 1, peer default)" if not a.par_chunksize else "")
            + "; pool start-up included; fresh cache each",
        )


# --------------------------------------------------------------------------
# joblib.Memory
# --------------------------------------------------------------------------


class JoblibPeer:
    """joblib.Memory with one cached call per memo chunk.

    Choice: the natural joblib translation of a chunked sweep is a
    ``memory.cache``-decorated function whose arguments are the chunk's axis
    values (tuples) and whose result is the list of that chunk's point outputs.
    Memoizing per point instead would mean 1,000,000 cache directories for
    n=1000, which no joblib user would do.
    """

    name = "joblib"

    def __init__(self, base: Path):
        import joblib  # noqa: F401

        self.base = base / self.name

    def grid_dir(self, n: int, chunk: int) -> Path:
        return self.base / f"grid_n{n}_c{chunk}"

    def memo(self, root: Path):
        from joblib import Memory

        mem = Memory(location=str(root), verbose=0)
        return mem.cache(grid_chunk)

    def cold(self, root: Path, n: int, chunk: int) -> list:
        f = self.memo(root)
        out: list = []
        for av in chunks_of(list(range(n)), chunk):
            for bv in chunks_of(list(range(n)), chunk):
                out.extend(f(av, bv))
        return out

    def ensure_warm(self, n: int, chunk: int) -> Path:
        root = self.grid_dir(n, chunk)
        if not (root / COMPLETE_MARK).exists():
            rm(root)
            self.cold(root, n, chunk)
            (root / COMPLETE_MARK).touch()
        reset_calls()  # preparation is not part of the measured work
        return root

    def w1(self, a: argparse.Namespace) -> dict:
        root = self.grid_dir(a.n, a.chunk)
        rm(root)
        t0 = now_ms()
        out = self.cold(root, a.n, a.chunk)
        ms = now_ms() - t0
        (root / COMPLETE_MARK).touch()
        return {
            "ms": ms,
            "points": len(out),
            "executed": CALLS,
            "ok": check_points(out, grid_pairs(range(a.n), range(a.n))),
            "note": "Memory(dir).cache(grid_chunk) called once per chunk "
            "(args: chunk's a and b value tuples); fresh dir",
        }

    def w2(self, a: argparse.Namespace) -> dict:
        root = self.ensure_warm(a.n, a.chunk)
        pairs = grid_pairs(range(a.n), range(a.n))
        return timed_repeat(
            a.repeat,
            lambda: self.cold(root, a.n, a.chunk),
            lambda out: {"points": len(out), "ok": check_points(out, pairs)},
            note="same per-chunk calls on the warm Memory; every chunk loaded",
        )

    def w3(self, a: argparse.Namespace) -> dict:
        root = self.ensure_warm(a.n, a.chunk)
        sub = subset_values(a.n)
        pairs = grid_pairs(sub, sub)

        def once():
            f = self.memo(root)
            # requested values grouped by chunk, keeping the chunk's full values
            def group(vals: list[int]) -> list[tuple[tuple, list[int]]]:
                groups: dict[int, list[int]] = {}
                for v in vals:
                    groups.setdefault(v // a.chunk, []).append(v)
                full = chunks_of(list(range(a.n)), a.chunk)
                return [
                    (full[c], [v - c * a.chunk for v in vs])
                    for c, vs in sorted(groups.items())
                ]

            out: list = []
            gb = group(sub)
            for av, ai in group(sub):
                for bv, bi in gb:
                    res = f(av, bv)
                    width = len(bv)
                    out.extend(res[i * width + j] for i in ai for j in bi)
            return out

        return timed_repeat(
            a.repeat,
            once,
            lambda out: {"points": len(out), "ok": check_points(out, pairs)},
            note="calls the cached chunk function of every chunk holding a "
            "requested point (all of them here) and slices its list",
        )

    def w4(self, a: argparse.Namespace) -> dict:
        root = self.ensure_warm(a.n, a.chunk)
        f = self.memo(root)
        # Distinct tuple objects for a and b: joblib hashes arguments by
        # pickling them together, so passing the *same* tuple object twice
        # (aliasing) yields a different key than two equal tuples.
        av = chunks_of(list(range(a.n)), a.chunk)
        bv = chunks_of(list(range(a.n)), a.chunk)
        samples = []
        cached = 0
        for _ in range(a.repeat):
            t0 = now_ms()
            cached = sum(
                1 for x in av for y in bv if f.check_call_in_cache(x, y)
            )
            samples.append(now_ms() - t0)
        return {
            "ms": None,
            "alt_ms": statistics.median(samples),
            "points": a.n * a.n,
            "executed": None,
            "chunks": len(av) * len(bv),
            "cached_chunks": cached,
            "ok": cached == len(av) * len(bv),
            "note": "no equivalent: joblib.Memory has no grid status/plan API; "
            "alt_ms = loop of MemorizedFunc.check_call_in_cache(a_vals, b_vals) "
            "over every chunk (closest user-level substitute)",
        }

    def w5(self, a: argparse.Namespace) -> dict:
        warm = self.ensure_warm(a.n, a.chunk)
        root = self.base / f"extend_n{a.n}_c{a.chunk}"
        rm(root)
        shutil.copytree(warm, root)
        n2 = extended_n(a.n)
        t0 = now_ms()
        f = self.memo(root)
        out: list = []
        for av in chunks_of(list(range(n2)), a.chunk):
            for bv in chunks_of(list(range(a.n)), a.chunk):
                out.extend(f(av, bv))
        ms = now_ms() - t0
        expected = (n2 - a.n) * a.n
        note = (
            "copy of warm cache (untimed); per-chunk calls over the extended "
            "grid; old chunks hit, new ones execute"
        )
        if CALLS != expected:
            note += (
                f"; executed {CALLS} != {expected} new points: a partial last "
                "bin of a gets new arguments and is recomputed whole"
            )
        return {
            "ms": ms,
            "points": len(out),
            "executed": CALLS,
            "expected_new": expected,
            "ok": check_points(out, grid_pairs(range(n2), range(a.n))),
            "note": note,
        }

    def w6(self, a: argparse.Namespace, iters: int) -> dict:
        from joblib import Memory, Parallel, delayed

        av = chunks_of(list(range(W6_A)), W6_CHUNK)
        bv = chunks_of(list(range(W6_B)), W6_CHUNK)
        res = {}
        for mode in ("serial", "parallel"):
            root = self.base / f"w6_{mode}"
            rm(root)
            root.mkdir(parents=True)
            cfile = str(root / "calls.count")
            t0 = now_ms()
            f = Memory(location=str(root / "cache"), verbose=0).cache(
                cpu_chunk, ignore=["count_file"]
            )
            if mode == "serial":
                parts = [f(x, y, iters, cfile) for x in av for y in bv]
            else:
                parts = Parallel(n_jobs=W6_WORKERS)(
                    delayed(f)(x, y, iters, cfile) for x in av for y in bv
                )
            out = [p for part in parts for p in part]
            res[mode] = (now_ms() - t0, len(out), count_file_size(Path(cfile)))
        return w6_result(
            res,
            note="serial: loop of Memory.cache(cpu_chunk) per chunk; parallel: "
            f"joblib.Parallel(n_jobs={W6_WORKERS}) (loky) over the same cached "
            "chunk calls; worker start-up included; fresh cache each",
        )


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------


def timed_repeat(
    repeat: int,
    once: Callable[[], Any],
    describe: Callable[[Any], dict],
    *,
    note: str,
) -> dict:
    samples = []
    out = None
    for _ in range(repeat):
        t0 = now_ms()
        out = once()
        samples.append(now_ms() - t0)
    res = {
        "ms": statistics.median(samples),
        "samples": samples if repeat > 1 else None,
        "executed": CALLS,
        "note": note,
    }
    res.update(describe(out))
    return res


def w6_result(res: dict, *, note: str) -> dict:
    (ms_s, pts_s, ex_s), (ms_p, pts_p, ex_p) = res["serial"], res["parallel"]
    return {
        "ms": ms_p,
        "ms_serial": ms_s,
        "ms_parallel": ms_p,
        "speedup": ms_s / ms_p if ms_p else None,
        "workers": W6_WORKERS,
        "points": pts_p,
        "executed": ex_p,
        "executed_serial": ex_s,
        "ok": pts_s == pts_p == ex_s == ex_p == W6_A * W6_B,
        "note": note,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", required=True, choices=WORKLOADS)
    p.add_argument("--peer", required=True, choices=PEERS)
    p.add_argument("--tmp", required=True, help="scratch dir (caches live here)")
    p.add_argument("--n", type=int, default=1000, help="values per axis")
    p.add_argument("--chunk", type=int, default=100, help="memo chunk per axis")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="W2/W3/W4: repetitions in this process; ms is the median",
    )
    p.add_argument("--iters", type=int, default=0, help="W6: burn() iterations "
                   "per point (0 = calibrate to ~1 ms)")
    p.add_argument("--par-chunksize", type=int, default=0, help="W6 chunk_memo: "
                   "ProcessPoolExecutor chunksize (0 = peer default, 1)")
    a = p.parse_args(argv)
    if a.n < 1 or a.chunk < 1 or a.repeat < 1:
        p.error("--n, --chunk and --repeat must be >= 1")
    return a


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    base = Path(a.tmp).resolve()
    record: dict[str, Any] = {
        "workload": a.workload,
        "peer": a.peer,
        "ms": None,
        "points": 0,
        "executed": None,
        "note": "",
        "n": a.n,
        "chunk": a.chunk,
        "version": peer_version(a.peer),
        "python": sys.version.split()[0],
    }
    rc = 0
    real_stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            base.mkdir(parents=True, exist_ok=True)
            peer = (ChunkMemoPeer if a.peer == "chunk_memo" else JoblibPeer)(base)
            if a.workload == "W6":
                if a.iters > 0:
                    iters, point_ms = a.iters, None
                else:
                    iters, point_ms = calibrate()
                record.update(
                    n=None,
                    chunk=W6_CHUNK,
                    grid=[W6_A, W6_B],
                    iters=iters,
                    point_ms=point_ms,
                )
                record.update(peer.w6(a, iters))
            else:
                record.update(getattr(peer, a.workload.lower())(a))
    except Exception as exc:  # one JSON line even on failure
        traceback.print_exc(file=sys.stderr)
        record["ms"] = None
        record["error"] = f"{type(exc).__name__}: {exc}"
        rc = 1
    record = {k: v for k, v in record.items() if v is not None or k in
              ("ms", "executed")}
    real_stdout.write(json.dumps(record) + "\n")
    real_stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
