"""The demo project end to end on the embedded defaults, with the time spent per asset kind.

Target (2-core machine): <= 3 minutes in all.

Usage: python benchmarks/bench_demo.py [--preset veryfast]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import dagster as dg
from dagster import DagsterEventType, RunsFilter

from videogen.demo import DEMO_NAME, DEMO_SCRIPT, DEMO_TITLE
from videogen.operations import create_project, render
from videogen_resources.settings import BackendSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="veryfast", help="x264 preset of the clips")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "home").mkdir()
        root = base / "studio"
        with dg.instance_for_test(temp_dir=str(base / "home")) as instance:
            t0 = time.perf_counter()
            create_project(
                root,
                title=DEMO_TITLE,
                name=DEMO_NAME,
                script_file=DEMO_SCRIPT,
                minutes=1,
                instance=instance,
            )
            render(
                root,
                DEMO_NAME,
                instance=instance,
                settings=BackendSettings(clip_preset=args.preset),
            )
            total = time.perf_counter() - t0
            per_kind: dict[str, float] = defaultdict(float)
            for run in instance.get_runs(RunsFilter()):
                starts: dict[str, float] = {}
                for rec in instance.get_records_for_run(run.run_id, limit=100000).records:
                    entry = rec.event_log_entry
                    ev = entry.dagster_event
                    if ev is None or ev.step_key is None:
                        continue
                    if ev.event_type == DagsterEventType.STEP_START:
                        starts[ev.step_key] = entry.timestamp
                    elif ev.event_type == DagsterEventType.STEP_SUCCESS:
                        kind = ev.step_key.split("__", 1)[-1]
                        per_kind[kind] += entry.timestamp - starts.get(ev.step_key, entry.timestamp)
            sentences = len(instance.get_dynamic_partitions(f"{DEMO_NAME}__sentences"))
    print(f"demo: {sentences} sentences, clips at x264 preset {args.preset}")
    print(f"end to end (create + render): {total:.1f} s  (target <= 180 s)")
    for kind, seconds in sorted(per_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<11} {seconds:6.1f} s of step time")


if __name__ == "__main__":
    main()
