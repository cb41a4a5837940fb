#!/bin/sh
# examples_check.sh BUILD - runs the Benchmarks Game examples of BUILD under
# fork, spawn and forkserver, with three workers: spectral_norm 100 prints
# the benchmark's value, and mandelbrot 200 (and 203, whose rows end in
# padding) gives the bytes of the serial reference, tests/mandelbrot_ref.
set -eu
build=$1
mandelbrot=$build/examples/mandelbrot
spectral_norm=$build/examples/spectral_norm
ref=$build/tests/mandelbrot_ref
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "examples_check: $*"
    exit 1
}

# A P4 picture of 200 x 200: its header, then 200 rows of 25 bytes.
printf 'P4\n200 200\n' >"$tmp/header"
check_200() {
    head -c 11 "$1" | cmp -s - "$tmp/header" ||
        fail "$2: not a P4 header for 200 x 200"
    size=$(wc -c <"$1")
    [ "$size" -eq $((11 + 200 * 25)) ] ||
        fail "$2: $size bytes, not $((11 + 200 * 25))"
}

"$ref" 200 >"$tmp/ref200.pbm"
"$ref" 203 >"$tmp/ref203.pbm"
check_200 "$tmp/ref200.pbm" "mandelbrot_ref 200"

for m in fork spawn forkserver; do
    export MP_START_METHOD=$m MP_CPU_COUNT=3
    out=$("$spectral_norm" 100) || fail "spectral_norm 100 ($m) failed"
    [ "$out" = "1.274219991" ] ||
        fail "spectral_norm 100 ($m) printed '$out', not 1.274219991"
    for n in 200 203; do
        "$mandelbrot" $n >"$tmp/$m$n.pbm" ||
            fail "mandelbrot $n ($m) failed"
        cmp -s "$tmp/ref$n.pbm" "$tmp/$m$n.pbm" ||
            fail "mandelbrot $n ($m) differs from mandelbrot_ref $n"
    done
    check_200 "$tmp/${m}200.pbm" "mandelbrot 200 ($m)"
done
echo "examples_check: spectral_norm and mandelbrot right under fork," \
    "spawn and forkserver"
