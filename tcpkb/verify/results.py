"""Verification results on disk: one JSON file per kernel release and architecture.

`tcpkb verify` writes `<kernel>-<arch>.json` (merging a partial run into the
previous one); `tcpkb build` reads every file it finds, so results from other
machines sit side by side with this one's instead of replacing them.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile

from .. import __version__, paths


def file_for(kernel: str, arch: str, folder: str | None = None) -> str:
    safe = "".join(c if c.isalnum() or c in "._-+" else "_" for c in f"{kernel}-{arch}")
    return os.path.join(folder or paths.results_dir_for_writing(), f"{safe}.json")


def read(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ValueError(f"{path}: not a tcpkb results file")
    return data


def write(results: list[dict], kernel: str, arch: str, folder: str | None = None,
          known: set[str] | None = None) -> str:
    """Merge `results` into this machine's file (a scenario's new result replaces its old one;
    old results of scenarios no longer in `known` are dropped)."""
    path = file_for(kernel, arch, folder)
    by_name: dict[str, dict] = {}
    if os.path.exists(path):
        try:
            by_name = {r["scenario"]: r for r in read(path)["results"]}
        except (ValueError, KeyError, OSError):
            by_name = {}  # an unreadable old file is replaced, not merged
    if known is not None:
        by_name = {k: v for k, v in by_name.items() if k in known}
    by_name.update({r["scenario"]: r for r in results})
    data = {"kernel": kernel, "arch": arch, "tcpkb_version": __version__,
            "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "results": [by_name[k] for k in sorted(by_name)]}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".results-", suffix=".json", dir=os.path.dirname(path))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for everyone to read
    os.replace(tmp, path)
    return path


def load_all() -> list[dict]:
    """Every machine's latest result of each scenario, tagged with the file it came from.

    The same kernel can appear twice (the results shipped in the package and the user's own
    run on that kernel): the newer run of a scenario wins, and on a tie the later directory."""
    latest: dict[tuple, dict] = {}
    for path in paths.result_files():
        try:
            data = read(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read verification results {path}: {e}") from None
        for r in data["results"]:
            key = (r["scenario"], r["kernel"], r["arch"])
            if key not in latest or r["time"] >= latest[key]["time"]:
                latest[key] = {**r, "file": os.path.basename(path)}
    return list(latest.values())


def entry_levels(results: list[dict], kernel: str | None = None, arch: str | None = None) -> dict[str, str]:
    """entry id -> 'reproduced' or 'checked', from passing results (of one machine if given)."""
    levels: dict[str, str] = {}
    for r in results:
        if (kernel and r["kernel"] != kernel) or (arch and r["arch"] != arch):
            continue
        if r["level"] == "checked":
            for e in r.get("entries") or []:
                if e["ok"] is True:
                    levels.setdefault(e["entry"], "checked")
        elif r["status"] == "passed":
            for entry in r["proves"]:
                levels[entry] = "reproduced"
    return levels
