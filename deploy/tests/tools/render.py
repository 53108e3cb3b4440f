#!/usr/bin/env python3
"""Render the rust-api-axum Helm chart offline (no helm binary, no cluster) with helm-python-sdk.

    render.py CHART_DIR [-f values.yaml ...] [--set-json '{...}'] --out DIR [--kube-version 1.33.0]
              [--name RELEASE] [--namespace NS] [--upgrade]

Values are layered like `helm install`: the chart's values.yaml, then each -f file in order, then each
--set-json object (a JSON object deep-merged; Helm's own `key=JSON` form is accepted too). The merged values
are checked against values.schema.json, the templates rendered (a template's `fail` stops it), and every
non-empty manifest document is written to DIR as its own file (NNN-<template>-<kind>-<name>.yaml; DIR is
emptied first). NOTES.txt is not a manifest and is written as NOTES.txt.

Standard output is ONE JSON object:
    {"ok": true, "manifests": [{"template", "file", "kind", "name", "doc"}, ...], "notes": "..."}
or, on any failure (schema violation, `fail` message, render error, bad input),
    {"ok": false, "error": "<the message>"}   and exit status 1.

`--kube-version` only matters to templates that read .Capabilities.KubeVersion; helm-python-sdk's render
takes no such option, so it is used for the chart's kubeVersion constraint check here and passed to lint.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

import helm_python as helm


class RenderFailure(Exception):
    """A failure whose message is reported as {"ok": false, "error": ...}."""


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing for user-supplied layers: maps merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise RenderFailure(f"cannot read values file {path}: {error.strerror}") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RenderFailure(f"values file {path} is not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RenderFailure(f"values file {path} must hold a mapping at its top, not {type(data).__name__}")
    return data


def parse_set_json(expression: str) -> dict[str, Any]:
    """A JSON object, or Helm's `--set-json key.path=JSON[,...]` form."""
    stripped = expression.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise RenderFailure(f"--set-json {expression!r} is not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise RenderFailure(f"--set-json {expression!r} must be a JSON object")
        return data
    try:
        return helm.parse_set_json(expression)
    except helm.HelmError as error:
        raise RenderFailure(f"--set-json {expression!r}: {error.detail}") from error


def clean_helm_message(message: str) -> str:
    """Keep a template's `fail` text (or the schema's complaint) without Go's template-position prefix noise.

    Helm reports `fail` as: execution error at (chart/templates/x.yaml:3:4): <message>. The position is kept
    in front (it says which template), the message stays whole.
    """
    message = message.strip()
    match = re.search(r"execution error at \(([^)]*)\): (.*)$", message, re.S)
    if match:
        return f"{match.group(2).strip()} [{match.group(1)}]"
    return message


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def check_kube_version(constraint: str | None, kube_version: str) -> None:
    """The chart's kubeVersion is '>=X.Y.Z-0'; anything else is not interpreted here."""
    if not constraint:
        return
    match = re.fullmatch(r"\s*>=\s*v?(\d+\.\d+\.\d+)(-0)?\s*", constraint)
    if match and version_tuple(kube_version) < version_tuple(match.group(1)):
        raise RenderFailure(f"chart needs Kubernetes {constraint}, asked to render for {kube_version}")


def split_documents(text: str) -> list[str]:
    """Split a rendered template into YAML documents (Helm joins them with '---' lines)."""
    documents = re.split(r"(?m)^---[ \t]*(?:#.*)?$", text)
    return [doc for doc in documents if doc.strip() and yaml.safe_load(doc) is not None]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower() or "x"


def render(args: argparse.Namespace) -> dict[str, Any]:
    chart_dir = args.chart
    if not Path(chart_dir, "Chart.yaml").is_file():
        raise RenderFailure(f"{chart_dir} is not a chart directory (no Chart.yaml)")

    overrides: dict[str, Any] = {}
    for path in args.values:
        overrides = deep_merge(overrides, load_values_file(path))
    for expression in args.set_json:
        overrides = deep_merge(overrides, parse_set_json(expression))

    try:
        with helm.Chart.load(chart_dir) as chart:
            check_kube_version(chart.metadata.get("kubeVersion"), args.kube_version)
            values = chart.merge_values(overrides)
            try:
                chart.validate_schema(values)
            except helm.HelmValuesError as error:
                raise RenderFailure(f"values don't meet the chart's values.schema.json: {error.detail.strip()}") from error
            rendered = chart.render(
                overrides,
                name=args.name,
                namespace=args.namespace,
                is_install=not args.upgrade,
                is_upgrade=args.upgrade,
            )
    except helm.HelmError as error:
        raise RenderFailure(clean_helm_message(error.detail or str(error))) from error

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    manifests: list[dict[str, Any]] = []
    notes = ""
    for template in sorted(rendered):
        text = rendered[template]
        if template.endswith("NOTES.txt"):
            notes = text
            (out / "NOTES.txt").write_text(text, encoding="utf-8")
            continue
        if not text.strip():
            continue
        for document in split_documents(text):
            try:
                doc = yaml.safe_load(document)
            except yaml.YAMLError as error:
                raise RenderFailure(f"{template} rendered invalid YAML: {error}") from error
            if not isinstance(doc, dict):
                raise RenderFailure(f"{template} rendered a document that is not a mapping")
            kind = doc.get("kind")
            name = (doc.get("metadata") or {}).get("name")
            base = Path(template).name.rsplit(".", 1)[0]
            filename = f"{len(manifests):03d}-{slug(base)}-{slug(str(kind))}-{slug(str(name))}.yaml"
            (out / filename).write_text(document.strip("\n") + "\n", encoding="utf-8")
            manifests.append(
                {"template": template, "file": str(out / filename), "kind": kind, "name": name, "doc": doc}
            )
    if not manifests:
        raise RenderFailure("the chart rendered no manifest")
    return {"ok": True, "manifests": manifests, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chart", metavar="CHART_DIR")
    parser.add_argument("-f", "--values", action="append", default=[], metavar="VALUES_YAML")
    parser.add_argument("--set-json", action="append", default=[], metavar="JSON")
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--kube-version", default="1.33.0")
    parser.add_argument("--name", default="rust-api-axum", help="release name (default rust-api-axum)")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--upgrade", action="store_true", help="render as an upgrade instead of an install")
    args = parser.parse_args(argv)
    try:
        result = render(args)
    except RenderFailure as error:
        print(json.dumps({"ok": False, "error": str(error)}))
        return 1
    except Exception as error:  # an unexpected failure is still one JSON object
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
