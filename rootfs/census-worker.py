"""Count the importable Python distributions of the interpreter that runs this file.

Run by rootfs/census inside an image (python3 - < census-worker.py). Standard library only.
Each distribution's top-level modules come from top_level.txt, else from its file list; every
module is imported in a fresh interpreter with a timeout. A distribution counts as importable when
all of its public top-level modules that exist on disk import (private "_x" ones only count when it
has no public one; a distribution without any module name is guessed from its name, else not counted).

Output (stdout): a summary, then "--- failures" and one line per failing distribution.
"""

from __future__ import annotations

import concurrent.futures
import importlib.metadata as metadata
import importlib.util
import os
import re
import subprocess
import sys
import time

TIMEOUT = float(os.environ.get("CENSUS_TIMEOUT") or 120)
JOBS = int(os.environ.get("CENSUS_JOBS") or os.cpu_count() or 2)
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EXTENSION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\..*(so|pyd)$")


def top_level_modules(dist: metadata.Distribution) -> list[str]:
    text = dist.read_text("top_level.txt")
    if text:
        names = {line.strip().replace("/", ".") for line in text.splitlines()}
        names = {n for n in names if n and all(IDENTIFIER.match(p) for p in n.split("."))}
        if names:
            return sorted(names)
    names = set()
    for path in dist.files or []:
        parts = path.parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith((".dist-info", ".egg-info")):
            continue
        first = parts[0]
        if len(parts) > 1 and IDENTIFIER.match(first) and parts[-1].endswith((".py", ".so")):
            names.add(first)
        elif len(parts) == 1 and first.endswith(".py") and IDENTIFIER.match(first[:-3]):
            names.add(first[:-3])
        elif len(parts) == 1 and EXTENSION.match(first):
            names.add(EXTENSION.match(first).group(1))
    return sorted(names)


def guessed_from_name(dist: metadata.Distribution) -> list[str]:
    """For distributions that ship neither top_level.txt nor a file list (some Debian ones)."""
    name = re.sub(r"[-.]+", "_", (dist.metadata["Name"] or "").strip())
    candidates = {name, name.lower(), re.sub(r"^python_", "", name.lower()),
                  re.sub(r"^py", "", name.lower())}  # SimPy -> SimPy, pycairo -> cairo
    return sorted(c for c in candidates if IDENTIFIER.match(c) and installed(c))


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def wanted(dist: metadata.Distribution) -> list[str]:
    """Public top-level modules that exist on disk (Debian's top_level.txt lists strays such as
    "src" or "debian"); private ones only when there is no public one."""
    listed = top_level_modules(dist)
    present = [m for m in listed if installed(m)] or guessed_from_name(dist)
    if listed and not present:
        return listed  # listed but absent: a broken distribution, let the import say why
    public = [m for m in present if not m.startswith("_")]
    return public or present


def try_import(module: str) -> tuple[str, str]:
    """'' on success, else a one-line reason."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run([sys.executable, "-c", "import importlib, sys; importlib.import_module(sys.argv[1])",
                               module], capture_output=True, text=True, timeout=TIMEOUT, env=env,
                              cwd="/tmp", stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return module, f"timed out after {TIMEOUT:.0f} s"
    if done.returncode == 0:
        return module, ""
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return module, (lines[-1].strip() if lines else f"exit status {done.returncode}")[:300]


def main() -> int:
    started = time.monotonic()
    dists: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").strip()
        if name:
            dists.setdefault(re.sub(r"[-_.]+", "-", name).lower(), dist)
    modules_of = {key: wanted(dist) for key, dist in dists.items()}
    all_modules = sorted({m for mods in modules_of.values() for m in mods})
    with concurrent.futures.ThreadPoolExecutor(JOBS) as pool:
        reasons = dict(pool.map(try_import, all_modules))

    importable, failures, no_modules = [], [], []
    for key in sorted(dists):
        mods = modules_of[key]
        if not mods:
            no_modules.append(key)
            continue
        bad = [(m, reasons[m]) for m in mods if reasons[m]]
        if bad:
            failures.append((key, bad))
        else:
            importable.append(key)

    total = len(importable) + len(failures)
    print(f"python: {sys.version.split()[0]} ({sys.executable})")
    print(f"distributions installed: {len(dists)}; without a top-level module (not counted): {len(no_modules)}")
    print(f"modules tried: {len(all_modules)} in {time.monotonic() - started:.0f} s")
    print(f"importable distributions: {len(importable)} of {total}")
    print("--- failures")
    for key, bad in failures:
        print(f"{key}: " + "; ".join(f"{m}: {why}" for m, why in bad))
    for key in no_modules:
        print(f"{key}: (no top-level module found; not counted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
