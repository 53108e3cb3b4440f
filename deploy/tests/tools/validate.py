#!/usr/bin/env python3
"""Validate rendered manifests with kubernetes-validate --strict against several Kubernetes versions.

    validate.py [-k 1.27.0 -k 1.30.0 ...] FILE_OR_DIR...

Runs `kubernetes-validate --strict -k VERSION FILE` (the installed tool, from the same venv) for each built-in
kind. kubernetes-validate ships schemas for Kubernetes' own kinds only; for a kind it has no schema for (a CRD
such as monitoring.coreos.com/v1 ServiceMonitor) it prints "WARN ... schema not found" and exits 0, which would
look like a pass. So files whose kind is not built in are NOT handed to it: they are listed as
"not validated (CRD, no schema in kubernetes-validate)", and any WARN line from the tool counts as a failure.

Prints one JSON object: {"ok", "versions", "validated": [{"file","kind","name"}], "not_validated": [...],
"failures": [{"file","version","output"}]}; exits 1 when anything failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

# Kubernetes' own API groups; anything else (x.y.z with a dot, not *.k8s.io) is a CRD.
DEFAULT_VERSIONS = ["1.27.0", "1.30.0", "1.33.0"]


def is_builtin(api_version: str) -> bool:
    group = api_version.split("/")[0] if "/" in api_version else ""
    return group == "" or "." not in group or group.endswith(".k8s.io")


def tool() -> str:
    exe = Path(sys.executable).with_name("kubernetes-validate")
    return str(exe) if exe.exists() else "kubernetes-validate"


def collect(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            files.append(path)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", "--kube-version", action="append", dest="versions")
    parser.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    args = parser.parse_args(argv)
    versions = args.versions or DEFAULT_VERSIONS

    validated, not_validated, failures = [], [], []
    builtin_files: list[Path] = []
    for file in collect(args.paths):
        for doc in (d for d in yaml.safe_load_all(file.read_text(encoding="utf-8")) if d):
            entry = {"file": str(file), "kind": doc.get("kind"), "name": (doc.get("metadata") or {}).get("name")}
            if is_builtin(str(doc.get("apiVersion", ""))):
                validated.append(entry)
                if file not in builtin_files:
                    builtin_files.append(file)
            else:
                entry["reason"] = f"{doc.get('apiVersion')} is a CRD: kubernetes-validate has no schema for it"
                not_validated.append(entry)

    for version in versions:
        if not builtin_files:
            break
        cmd = [tool(), "--strict", "--quiet", "-k", version, *map(str, builtin_files)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        output = (proc.stdout + proc.stderr).strip()
        # --quiet leaves only WARN/ERROR/FATAL lines: a WARN (no schema) must not pass as validated.
        if proc.returncode != 0 or output:
            failures.append({"version": version, "command": " ".join(cmd), "rc": proc.returncode, "output": output})

    result = {
        "ok": not failures,
        "versions": versions,
        "validated": validated,
        "not_validated": not_validated,
        "failures": failures,
    }
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
