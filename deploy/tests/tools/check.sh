#!/usr/bin/env bash
# Whole chart check: render the default values and the good value sets, validate every built-in manifest with
# kubernetes-validate --strict for each version, lint strictly, and expect the bad value sets to fail with their
# messages. Usage: deploy/tests/tools/check.sh [VENV_PYTHON]   (default deploy/tests/.venv/bin/python)
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
py="${1:-$root/deploy/tests/.venv/bin/python}"
chart="$root/deploy/helm/rust-api-axum"
values="$root/deploy/helm/values"
tools="$root/deploy/tests/tools"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
versions=(-k 1.27.0 -k 1.30.0 -k 1.33.0 -k 1.37.0)
failed=0 passed=0

for set in default ha-postgres single-sqlite; do
  args=(); [[ $set != default ]] && args=(-f "$values/$set.yaml")
  if "$py" "$tools/render.py" "$chart" "${args[@]}" --out "$out/$set" >"$out/$set.json" \
     && "$py" "$tools/validate.py" "${versions[@]}" "$out/$set" >"$out/$set.validate.json"; then
    summary=$("$py" -c 'import json,sys; v=json.load(open(sys.argv[1])); print(len(v["validated"]), "validated,", "not validated (CRD):", [x["kind"] for x in v["not_validated"]] or "none")' "$out/$set.validate.json")
    echo "ok   render+validate $set: $summary"; passed=$((passed+1))
  else
    echo "FAIL render+validate $set"; cat "$out/$set.json" "$out/$set.validate.json" 2>/dev/null | head -50; failed=$((failed+1))
  fi
done

for set in bad-schema sqlite-replicas; do
  if "$py" "$tools/render.py" "$chart" -f "$values/$set.yaml" --out "$out/$set" >"$out/$set.json"; then
    echo "FAIL $set rendered but must not"; failed=$((failed+1))
  else
    echo "ok   $set refused: $("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"])' "$out/$set.json" | head -c 400)"
    passed=$((passed+1))
  fi
done

if "$py" "$tools/lint.py" "$chart" -f "$values/ha-postgres.yaml" -f "$values/single-sqlite.yaml" >"$out/lint.json"; then
  echo "ok   helm lint --strict (defaults, ha-postgres, single-sqlite)"; passed=$((passed+1))
else
  echo "FAIL helm lint --strict"; cat "$out/lint.json"; failed=$((failed+1))
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
