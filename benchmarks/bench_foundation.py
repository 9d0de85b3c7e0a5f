"""Foundation figures: creating a 400-sentence project, and re-syncing after one edited sentence.

Targets (2-core machine): create <= 2 s (sections, database rows, Dagster partitions and
observations); re-sync after one edit <= 0.5 s with exactly one data version changed.

Usage: python benchmarks/bench_foundation.py [--sentences 400]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import dagster as dg

from videogen.operations import create_project, sync


def make_script(n: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    words = "lava ash magma crust plate quake cone vent rock gas heat cloud river forest".split()
    lines = []
    for i in range(n):
        if i % 20 == 0:
            lines.append(f"\n## Section {i // 20 + 1}")
        lines.append(f"Sentence {i} tells how the " + " ".join(rng.choices(words, k=9)) + ".")
        if i % 7 == 0:
            lines.append("> camera: zoom-in | motion: 0.4")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "home").mkdir()
        script = base / "script.md"
        script.write_text(make_script(args.sentences), encoding="utf-8")
        root = base / "studio"
        with dg.instance_for_test(temp_dir=str(base / "home")) as instance:
            # warm imports (pysbd, SQLAlchemy, Alembic) so the figure is the work itself
            create_project(root, title="Warm up", name="warm", script_file=script)
            t0 = time.perf_counter()
            folder, result = create_project(
                root, title="Bench", name="bench", script_file=script, instance=instance
            )
            t_create = time.perf_counter() - t0
            assert result is not None and len(result.order) == args.sentences
            t0 = time.perf_counter()
            sync(root, "bench", instance=instance)  # first publish of the observed versions
            t_observe = time.perf_counter() - t0

            text = script.read_text(encoding="utf-8")
            target = f"Sentence {args.sentences // 2} tells"
            edited = text.replace(target, target + " us plainly", 1)
            (folder / "script.md").write_text(edited, encoding="utf-8")
            t0 = time.perf_counter()
            result2 = sync(root, "bench", instance=instance)
            t_sync = time.perf_counter() - t0
            changed = result2.text_changed + result2.direction_changed
    print(f"sentences: {args.sentences}")
    print(f"create project (sections, DB rows, partitions): {t_create:.3f} s  (target <= 2 s)")
    print(
        f"first report of {2 * args.sentences} observed data versions: {t_observe:.3f} s"
        "  (no target; Dagster's SQLite event log)"
    )
    print(f"re-sync after one edited sentence: {t_sync:.3f} s  (target <= 0.5 s)")
    print(f"data versions changed by the edit: {len(changed)}  (target: exactly 1)")


if __name__ == "__main__":
    main()
