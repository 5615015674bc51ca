#!/usr/bin/env bash
# Mutation testing of the modules every reported number depends on, with cosmic-ray (dev extra).
# Each module is mutated one change at a time and the tests that cover it are run; a mutant that no test
# notices "survives". Results and the equivalent survivors are recorded in docs/testing.md. Not run in CI
# (about 45 minutes on one core); CI runs the oracle tests these scores rest on.
#
# cosmic-ray edits the module files in place (and restores each one after its mutant), so run this in a
# checkout whose listed modules have no uncommitted changes; they are restored from git on exit either way.
#
# Usage: scripts/mutation.sh [MODULE ...]     (default: all six below)
#        MUTATION_WORKDIR=DIR keeps the session databases and reports in DIR (default: a temporary folder).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh dev

# module → the fast tests that cover it (-x: the first failure kills the mutant)
declare -A TESTS=(
  [bench/scoring.py]="tests/test_scoring.py tests/test_oracle.py"
  [bench/metrics.py]="tests/test_oracle.py"
  [bench/statistics.py]="tests/test_statistics.py tests/test_oracle.py"
  [bench/compare.py]="tests/test_oracle.py"
  [bench/instances.py]="tests/test_oracle.py tests/test_bundled.py"
  [alignment/reward.py]="tests/test_reward.py"
)
MODULES=("$@")
[ ${#MODULES[@]} -gt 0 ] || MODULES=(bench/scoring.py bench/metrics.py bench/statistics.py bench/compare.py
                                    bench/instances.py alignment/reward.py)

if ! git diff --quiet -- "${MODULES[@]}"; then
  echo "error: ${MODULES[*]}: commit or stash your changes first (cosmic-ray edits these files in place)" >&2
  exit 2
fi
trap 'git checkout -- "${MODULES[@]}"' EXIT
WORK="${MUTATION_WORKDIR:-$(mktemp -d)}"
mkdir -p "$WORK"

for module in "${MODULES[@]}"; do
  tests="${TESTS[$module]:?no tests listed for $module}"
  name="$(basename "$module" .py)"
  config="$WORK/$name.toml"
  cat > "$config" <<EOF
[cosmic-ray]
module-path = "$module"
timeout = 120.0
excluded-modules = []
test-command = "python -m pytest -x -q -p no:cacheprovider -p no:randomly $tests"

[cosmic-ray.distributor]
name = "local"

# Left out: replacements by operators that only raise a TypeError on these numbers and sets (shifts, bitwise,
# floor division, modulo, power), identity comparisons, and whole-statement operators that mutate names.
[cosmic-ray.filters.operators-filter]
exclude-operators = [
  "core/ReplaceBinaryOperator_.*(FloorDiv|Mod|Pow|RShift|LShift|BitOr|BitAnd|BitXor).*",
  "core/ReplaceComparisonOperator_(Is|IsNot)_.*",
  "core/ReplaceComparisonOperator_.*_(Is|IsNot)",
  "core/VariableReplacer",
  "core/VariableInserter",
  "core/RemoveDecorator",
  "core/ExceptionReplacer",
]
EOF
  session="$WORK/$name.sqlite"
  rm -f "$session"
  cosmic-ray init "$config" "$session"
  cr-filter-operators "$session" "$config"
  cr-filter-pragma "$session"
  echo "== $module, tests: $tests" >&2
  cosmic-ray exec "$config" "$session"
  cr-report --show-pending "$session" > "$WORK/$name.report.txt"
  tail -n 3 "$WORK/$name.report.txt"
done
echo "reports in $WORK" >&2
