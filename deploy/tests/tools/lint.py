#!/usr/bin/env python3
"""helm lint --strict, offline, with helm-python-sdk: exits non-zero on any error or warning.

    lint.py CHART_DIR [-f values.yaml ...] [--kube-version 1.33.0]

Lints with the chart's default values and then with each -f file on its own (like `helm lint -f FILE`), since a
value set can reach templates the defaults skip. Prints one JSON object {"ok", "runs": [{"values", "messages"}]}.
Severity: 1 info, 2 warning, 3 error; strict lint makes warnings fail, and so does this script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

import helm_python as helm

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chart", metavar="CHART_DIR")
    parser.add_argument("-f", "--values", action="append", default=[], metavar="VALUES_YAML")
    parser.add_argument("--kube-version", default="1.33.0")
    args = parser.parse_args(argv)

    runs, ok = [], True
    for values_file in [None, *args.values]:
        values = yaml.safe_load(Path(values_file).read_text(encoding="utf-8")) or {} if values_file else None
        try:
            report = helm.lint(args.chart, values, strict=True, kube_version=f"v{args.kube_version.lstrip('v')}")
        except helm.HelmError as error:
            runs.append({"values": values_file or "(defaults)", "error": error.detail})
            ok = False
            continue
        messages = [
            {"severity": SEVERITY.get(m.get("severity"), str(m.get("severity"))), "path": m.get("path"), "error": m.get("error")}
            for m in report.get("messages", [])
        ]
        failed = bool(report.get("errors")) or any(m["severity"] in ("WARNING", "ERROR", "UNKNOWN") for m in messages)
        ok = ok and not failed
        runs.append({"values": values_file or "(defaults)", "ok": not failed, "messages": messages,
                     "errors": report.get("errors", [])})
    print(json.dumps({"ok": ok, "runs": runs}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
