#!/usr/bin/env bash
# Run the eight race-transfer protocols of seed 001 section 2 (Tables 1-4, targets CelebA and FairFace) on the
# synthetic default with the quick profile into one folder, one after the other, and print the wall time of each
# and of all eight (issue 14: under 15 min on 2 CPU cores together). The UTKFace-trained models are trained once
# for all of them (OUT/_trained/); only the in-domain benchmarks train per target.
# Usage: scripts/run_race_family.sh [OUT] [extra facebench flags]
set -euo pipefail
out=${1:-runs}
shift || true
protocols=(race_utk_celeba race_utk_celeba_augmentation race_utk_celeba_optimisers race_utk_celeba_summary
           race_utk_fairface race_utk_fairface_augmentation race_utk_fairface_optimisers race_utk_fairface_summary)
source "$(dirname "$0")/timed_runs.sh"
timed_runs "race-transfer family" "$out" "${protocols[@]}" -- "$@"
