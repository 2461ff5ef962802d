#!/usr/bin/env python3
"""Checks a run's TensorBoard event files against its metrics.jsonl, as TensorBoard reads them.

    python tools/tensorboard_check.py runs/NAME/tensorboard runs/NAME/metrics.jsonl

Loads the directory with TensorBoard's EventAccumulator (all scalars kept, purging of orphaned
data on, as in TensorBoard) and compares every scalar (tag, step, value as float32) with what
metrics.jsonl says, by the tag rules of docs/metrics.md#tensorboard. A resumed run appends to
metrics.jsonl: its resume record at step S means the steps after S are the resumed run's, so
the expected view keeps the last value written for each step. Exits 1, listing the differences,
when any scalar is missing, extra, duplicated or different; 0 when all match.
"""
import argparse
import json
import math
import struct
import sys


def as_float32(value):
    return struct.unpack("<f", struct.pack("<f", value))[0]


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def expected_scalars(metrics_path):
    """{(tag, step): float32 value} from metrics.jsonl, the last write of each step winning."""
    expected = {}
    with open(metrics_path) as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            event = record.get("event")
            step = record.get("step")
            if event in ("start", "resume"):
                # A run starts after its checkpoint: what an earlier run logged from there on is gone.
                expected = {key: v for key, v in expected.items() if key[1] <= step}
                continue
            if event == "overflow":
                group = "train/"
            elif event is not None:
                continue  # checkpoint, end
            elif "val_loss" in record:
                group = "val/" + record["set"] + "/" if "set" in record else "val/"
            elif "loss" in record:
                group = "train/"
            else:
                continue
            for key, value in record.items():
                if key in ("step", "set", "event") or not is_number(value):
                    continue
                tag = group + ("loss" if key == "val_loss" else key)
                expected[(tag, step)] = as_float32(float(value))
    return expected


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tensorboard_dir")
    parser.add_argument("metrics_jsonl")
    args = parser.parse_args()

    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(args.tensorboard_dir, size_guidance={"scalars": 0})
    accumulator.Reload()

    problems = []
    if accumulator.file_version != 2:
        problems.append(f"file_version {accumulator.file_version!r}, expected 2 (brain.Event:2)")
    actual = {}
    for tag in accumulator.Tags()["scalars"]:
        for scalar in accumulator.Scalars(tag):
            key = (tag, scalar.step)
            if key in actual:
                problems.append(f"duplicate: {tag} at step {scalar.step} ({actual[key]} and {scalar.value})")
            actual[key] = scalar.value

    expected = expected_scalars(args.metrics_jsonl)
    for key in sorted(expected.keys() - actual.keys()):
        problems.append(f"missing: {key[0]} at step {key[1]} (metrics.jsonl: {expected[key]})")
    for key in sorted(actual.keys() - expected.keys()):
        problems.append(f"extra: {key[0]} at step {key[1]} = {actual[key]}")
    for key in sorted(expected.keys() & actual.keys()):
        want, got = expected[key], actual[key]
        if not (want == got or (math.isnan(want) and math.isnan(got))):
            problems.append(f"different: {key[0]} at step {key[1]}: tensorboard {got!r}, metrics.jsonl {want!r}")

    if not expected:
        problems.append("metrics.jsonl has no scalars to compare")
    if problems:
        for problem in problems[:50]:
            print(problem)
        if len(problems) > 50:
            print(f"... and {len(problems) - 50} more")
        print(f"tensorboard_check: FAILED, {len(problems)} problem(s)")
        return 1
    tags = {tag for tag, _ in expected}
    steps = sorted({step for _, step in expected})
    print(f"tensorboard_check: {len(expected)} scalars in {len(tags)} tags, steps {steps[0]}..{steps[-1]}, "
          f"match metrics.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
