#!/usr/bin/env bash
# Run the four AIFR protocols of seed 002 (MORPH, CACD, FG-NET, AgeDB-30) on the synthetic default with the
# quick profile, one after the other, and print the wall time of each and of all four (issue 5: under 15 min
# on 2 CPU cores). CACD-VS and the dlib protocol are extra: pass --all to run them too.
# Usage: scripts/run_aifr_family.sh [OUT] [--all] [extra facebench flags]
set -euo pipefail
out=${1:-runs}
shift || true
protocols=(aifr_morph aifr_cacd aifr_fgnet aifr_agedb30)
if [[ "${1:-}" == "--all" ]]; then
  protocols+=(aifr_cacd_vs aifr_morph_dlib)
  shift
fi
source "$(dirname "$0")/timed_runs.sh"
timed_runs "AIFR family" "$out" "${protocols[@]}" -- "$@"
