# Sourced by scripts/setup and scripts/demo: each phase says what it does and how long it took.
#   phase "what it does" command args…          the command's own output shows it is alive
#   phase --beat "what it does" command args…   plus "still …" every 10 s (a quiet command)

phase() {
  local beat=""
  if [[ $1 == --beat ]]; then beat=1; shift; fi
  local what=$1 started=$SECONDS rc=0 beater=""
  shift
  echo "==> $what"
  if [[ -n $beat ]]; then
    # A subshell that prints every 10 s; its sleep dies with it, so it never holds a pipe open.
    (
      trap 'kill "$nap" 2>/dev/null; exit 0' TERM
      while :; do
        sleep 10 & nap=$!
        wait "$nap"
        echo "    still $what ($((SECONDS - started)) s)"
      done
    ) &
    beater=$!
  fi
  "$@" || rc=$?
  if [[ -n $beater ]]; then kill -TERM "$beater" 2>/dev/null; wait "$beater" 2>/dev/null || true; fi
  if ((rc != 0)); then
    echo "==> FAILED after $((SECONDS - started)) s (exit $rc): $what" >&2
    return "$rc"
  fi
  echo "    done in $((SECONDS - started)) s"
}
