#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ with clang (build-fuzz/) and runs each in turn on a
# copy of its corpus, then prints executions and crashes per harness (docs/fuzzing.md).
#
#   scripts/fuzz.sh [SECONDS] [HARNESS...]      each harness for SECONDS (default 60)
#   scripts/fuzz.sh --runs N [HARNESS...]       each harness for N executions
#   --merge: then add what each harness that did not crash found to fuzz/corpus/<name>/
#            (only inputs that reach new code: a set cover of the edges), to commit afterwards
#
# Exits 1 when any harness crashed (a crash, assertion, sanitizer report, leak, timeout or
# out-of-memory); each run's log, new inputs and crash files stay under
# build-fuzz/fuzz-runs/<time>/<name>/, and the summary names the crash files. Reproduce one
# with build-fuzz/fuzz/<name>_fuzz CRASH_FILE. Installs clang (Debian 12: clang 14 and its
# libFuzzer runtime) when it is missing; needs root or sudo for that.
set -euo pipefail
cd "$(dirname "$0")/.."

all_harnesses=(query job_file task_spec journal_record journal_segment snapshot command_codec
  replay api stream)

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

seconds=60
runs=""
merge=0
harnesses=()
while (($# > 0)); do
  case "$1" in
    --runs)
      [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage
      runs="$2"
      shift 2
      ;;
    --merge) merge=1; shift ;;
    -h | --help) usage ;;
    *)
      if [[ "$1" =~ ^[0-9]+$ ]]; then
        seconds="$1"
      elif [[ " ${all_harnesses[*]} " == *" $1 "* ]]; then
        harnesses+=("$1")
      else
        echo "fuzz.sh: unknown harness or option '$1' (harnesses: ${all_harnesses[*]})" >&2
        exit 2
      fi
      shift
      ;;
  esac
done
((${#harnesses[@]} > 0)) || harnesses=("${all_harnesses[@]}")

# ---- clang and its libFuzzer runtime
have_fuzzer_runtime() {
  command -v clang++ >/dev/null 2>&1 &&
    compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null
}
if ! have_fuzzer_runtime; then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  echo "fuzz.sh: installing clang and its libFuzzer runtime"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q clang libclang-rt-14-dev
fi

# ---- build (only the harnesses and the libraries they link)
build=build-fuzz
if [[ ! -f "$build/build.ninja" ]]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DOCX_FUZZ=ON -DOCX_BUILD_TESTS=OFF \
    -DOCX_BUILD_BENCH=OFF >/dev/null
fi
targets=()
for name in "${harnesses[@]}"; do targets+=("${name}_fuzz"); done
cmake --build "$build" --target "${targets[@]}"

# ---- run
out="$build/fuzz-runs/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
# Harnesses that go through files (journal_segment, snapshot) write them under $TMPDIR:
# memory when there is /dev/shm.
if [[ -z "${TMPDIR:-}" && -d /dev/shm && -w /dev/shm ]]; then export TMPDIR=/dev/shm; fi
limit=(-max_total_time="$seconds")
[[ -n "$runs" ]] && limit=(-runs="$runs")

failed=0
summary=()
for name in "${harnesses[@]}"; do
  dir="$out/$name"
  mkdir -p "$dir/corpus"
  cp -R "fuzz/corpus/$name/." "$dir/corpus/"
  flags=("${limit[@]}" -print_final_stats=1 -timeout=30 -artifact_prefix="$dir/")
  [[ -f "fuzz/dict/$name.dict" ]] && flags+=(-dict="fuzz/dict/$name.dict")
  echo "fuzz.sh: $name (${limit[*]}), log in $dir/log"
  start=$(date +%s)
  rc=0
  "$build/fuzz/${name}_fuzz" "${flags[@]}" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
  elapsed=$(($(date +%s) - start))
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
  crash_files=$(find "$dir" -maxdepth 1 -type f \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  crashes=$(printf '%s' "$crash_files" | grep -c . || true)
  if ((rc != 0 && crashes == 0)); then crashes=1; fi
  corpus=$(find "$dir/corpus" -type f | wc -l)
  summary+=("$(printf '%-16s %12s executions %6ss  corpus %5s  crashes %s' "$name" \
    "${executions:-?}" "$elapsed" "$corpus" "$crashes")")
  if ((crashes > 0)); then
    failed=1
    summary+=("    rc $rc; see $dir/log${crash_files:+; }$(echo $crash_files)")
  elif ((merge)); then
    before=$(find "fuzz/corpus/$name" -type f | wc -l)
    # Edges only (-use_counters=0) and a set cover: a few hundred files, not thousands.
    "$build/fuzz/${name}_fuzz" -set_cover_merge=1 -use_counters=0 "fuzz/corpus/$name" \
      "$dir/corpus" >"$dir/merge.log" 2>&1
    after=$(find "fuzz/corpus/$name" -type f | wc -l)
    summary+=("    merged: fuzz/corpus/$name has $after inputs (was $before)")
  fi
done

echo
echo "fuzz.sh: results (runs under $out)"
printf '%s\n' "${summary[@]}"
exit "$failed"
