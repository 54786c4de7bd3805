#!/usr/bin/env bash
# Run every protocol of the seed-000 family (cross-ethnicity age estimation) on the synthetic default with the
# quick profile, one after the other, and print the wall time of each and of all.
# Usage: scripts/run_age_family.sh [OUT] [extra flags]
set -euo pipefail
out=${1:-runs}
shift || true
protocols=(age_utk_cross_ethnicity age_utk_da_layers age_utk_dann_pretrained age_utk_dann_vs_mmd age_utk_dann_gamma
           age_utk_pairwise_mds)
source "$(dirname "$0")/timed_runs.sh"
timed_runs "seed-000 family" "$out" "${protocols[@]}" -- "$@"
