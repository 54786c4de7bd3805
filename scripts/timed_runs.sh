# Sourced by the run_*_family.sh scripts: timed_runs LABEL OUT PROTOCOL... -- [facebench flags]
# runs each protocol's file from protocols/ into OUT, one after the other, and prints the wall time of each and of all.
timed_runs() {
  local label=$1 out=$2 protocol t0 start
  shift 2
  local protocols=()
  while [[ $# -gt 0 && $1 != "--" ]]; do protocols+=("$1"); shift; done
  if [[ $# -gt 0 ]]; then shift; fi
  start=$(date +%s)
  for protocol in "${protocols[@]}"; do
    t0=$(date +%s)
    facebench run "protocols/${protocol}.yaml" --out "$out" "$@"
    echo "${protocol}: $(( $(date +%s) - t0 )) s"
  done
  echo "${label} (${#protocols[@]} protocols): $(( $(date +%s) - start )) s"
}
