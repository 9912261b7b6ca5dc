#!/bin/sh
# Instructions per call, counted by callgrind (see callgrind.rs): the whole process with
# N calls minus the same with none, divided by N; for the gateway and for the direct call,
# whose difference is what the gateway adds. Then the top functions of the gateway run.
#
#   benches/callgrind.sh                 # N=2000
#   PAI_CG_REQUESTS=500 benches/callgrind.sh
#   PAI_CG_ONLY=gateway benches/callgrind.sh   # skip the direct runs
#
# Needs valgrind. Output files go to $PAI_CG_OUT (default: target/callgrind).
set -eu
cd "$(dirname "$0")/.."
n=${PAI_CG_REQUESTS:-2000}
out=${PAI_CG_OUT:-${CARGO_TARGET_DIR:-target}/callgrind}
mkdir -p "$out"
bin=$(cargo bench -p pai-benches --bench callgrind --no-run 2>&1 |
    sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "callgrind.sh: could not build the driver" >&2; exit 1; }

# Total Ir of one run: `callgrind_run <target> <requests>`; its profile is $out/<target>-<requests>.out
callgrind_run() {
    file="$out/$1-$2.out"
    PAI_CG_TARGET=$1 PAI_CG_REQUESTS=$2 valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$bin" --bench >"$out/$1-$2.log" 2>&1 || { cat "$out/$1-$2.log" >&2; exit 1; }
    sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$file"
}

per_call() {
    base=$(callgrind_run "$1" 0)
    full=$(callgrind_run "$1" "$n")
    echo $(( (full - base) / n ))
}

gateway=$(per_call gateway)
echo "gateway: $gateway Ir per call (whole process: client + gateway + mock + records)"
if [ "${PAI_CG_ONLY:-}" != gateway ]; then
    direct=$(per_call direct)
    echo "direct:  $direct Ir per call (client + mock)"
    echo "added:   $((gateway - direct)) Ir per call"
fi
echo
echo "top functions, self (exclusive) cost, gateway run with $n calls:"
callgrind_annotate "$out/gateway-$n.out" 2>/dev/null | sed -n '/^Ir/,$p' | head -n 40
echo
echo "top functions, inclusive cost:"
callgrind_annotate --inclusive=yes "$out/gateway-$n.out" 2>/dev/null | sed -n '/^Ir/,$p' | head -n 60
