"""Score `tcpkb explain` on an evaluation set, per ecosystem.

    python scripts/eval_explain.py [FILE.jsonl ...] [--db PATH] [--misses]

Each line of FILE is {"ecosystem", "text", "expect"}: `expect` is the entry id an expert would
name first, or null for a line that is no socket error. Prints, per ecosystem, how many lines
name the expected entry first among the confident matches (top-1), then the negatives'
false-answer rate: how many get an answer at or above the documented confidence
(tcpkb.query.explain.CONFIDENT), which the contract allows for at most 1 in 50. Without FILE it
reads tests/explain_eval.jsonl. `--misses` lists every line that missed. The database is the
checkout's (built with `tcpkb build`) unless --db names another.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tcpkb.query.explain import CONFIDENT, explain  # noqa: E402
from tcpkb.query.lexicon import read  # noqa: E402
from tcpkb.query.lookup import connect  # noqa: E402


def load(paths: list[Path]) -> list[dict]:
    items = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{number}: not JSON ({exc.msg})")
            if not isinstance(item, dict) or "text" not in item or "expect" not in item:
                raise SystemExit(f"{path}:{number}: needs text and expect")
            items.append(item)
    return items


def answer(lexicon: dict, text: str) -> tuple[str | None, float]:
    """The first confident match and the best score (0 when nothing matched)."""
    matches = explain(lexicon, text)
    best = matches[0] if matches else None
    if best is None:
        return None, 0.0
    return (best["id"] if best["score"] >= CONFIDENT else None), best["score"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, default=[ROOT / "tests" / "explain_eval.jsonl"])
    parser.add_argument("--db", default=str(ROOT / "data" / "tcpkb.db"))
    parser.add_argument("--misses", action="store_true", help="list every line that missed")
    args = parser.parse_args()
    if not Path(args.db).is_file():
        print(f"eval_explain: no database at {args.db} (run `tcpkb build`)", file=sys.stderr)
        return 2
    items = load(args.files)
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses, false_answers, negatives = [], [], 0
    with connect(args.db) as conn:
        lexicon = read(conn)
        for item in items:
            got, score = answer(lexicon, item["text"])
            if item["expect"] is None:
                negatives += 1
                if got:
                    false_answers.append((item, got, score))
                continue
            tally = per[item.get("ecosystem") or "?"]
            tally[1] += 1
            if got == item["expect"]:
                tally[0] += 1
            else:
                misses.append((item, got, score))
    print(f"{'ecosystem':<28} {'top-1':>7} {'lines':>6}")
    for name, (right, total) in sorted(per.items(), key=lambda kv: (-kv[1][1], kv[0])):
        print(f"{name:<28} {right / total:>7.1%} {total:>6}")
    right = sum(r for r, _ in per.values())
    total = sum(t for _, t in per.values())
    if total:
        print(f"{'all positives':<28} {right / total:>7.1%} {total:>6}")
    if negatives:
        print(f"negatives answered at confidence >= {CONFIDENT}: {len(false_answers)} of {negatives} "
              f"({len(false_answers) / negatives:.1%}; the contract allows 1 in 50)")
    if args.misses:
        for item, got, score in misses + false_answers:
            print(f"  [{item.get('ecosystem')}] expect {item['expect']} got {got} ({score:.2f}): "
                  f"{item['text'][:100]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
