"""Checks a Prometheus text exposition against etcd's metric table with the real Prometheus
Python client parser (prometheus_client.parser.text_string_to_metric_families).

Usage: metrics_check.py EXPOSITION TABLE
Prints one JSON object: {"errors": [...], "lacking": [...], "families": N}; exits 1 when there
are errors. Run by tests/it/metrics.rs in the venv scripts/test creates.
"""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def expected_buckets(spec):
    """'0.001*2^14' -> etcd's prometheus.ExponentialBuckets(0.001, 2, 14)."""
    if spec == "-":
        return None
    start, rest = spec.split("*")
    factor, count = rest.split("^")
    return [float(start) * float(factor) ** i for i in range(int(count))]


def load_table(path):
    rows = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, kind, labels, buckets, since, help_text = line.rstrip("\n").split("\t")
            rows[name] = {
                "type": kind,
                "labels": set() if labels == "-" else set(labels.split(",")),
                "buckets": expected_buckets(buckets),
                "since": since,
                "help": help_text,
            }
    return rows


def main():
    exposition_path, table_path = sys.argv[1], sys.argv[2]
    with open(exposition_path, encoding="utf-8") as f:
        text = f.read()
    table = load_table(table_path)
    families = {}
    for fam in text_string_to_metric_families(text):
        families[fam.name] = fam
        # The parser strips a counter's "_total"; etcd names are looked up both ways.
        if fam.type == "counter":
            families[fam.name + "_total"] = fam
    errors, lacking = [], []
    for name, row in sorted(table.items()):
        if not row["since"][0].isdigit():
            lacking.append(f"{name}: {row['since']}")
            continue
        fam = families.get(name)
        if fam is None:
            errors.append(f"{name}: missing")
            continue
        if fam.type != row["type"]:
            errors.append(f"{name}: type {fam.type}, etcd has {row['type']}")
        if fam.documentation != row["help"]:
            errors.append(f"{name}: HELP {fam.documentation!r}, etcd has {row['help']!r}")
        labels = set()
        bounds = []
        for s in fam.samples:
            labels |= set(s.labels) - {"le"}
            if s.name == name + "_bucket":
                le = float(s.labels["le"])
                if not math.isinf(le) and le not in bounds:
                    bounds.append(le)
        if labels != row["labels"]:
            errors.append(f"{name}: labels {sorted(labels)}, etcd has {sorted(row['labels'])}")
        if row["buckets"] is not None:
            want = row["buckets"]
            if len(bounds) != len(want) or any(
                not math.isclose(a, b, rel_tol=1e-9) for a, b in zip(sorted(bounds), want)
            ):
                errors.append(f"{name}: buckets {sorted(bounds)}, etcd has {want}")
        if not fam.samples:
            errors.append(f"{name}: no samples")
    print(json.dumps({"errors": errors, "lacking": lacking, "families": len(set(map(id, families.values())))}))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
