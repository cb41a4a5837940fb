#!/bin/sh
# install_outside.sh SRC BUILD - install multiproc into a temporary prefix,
# then build examples/outside.c against it twice, with pkg-config and with
# find_package(multiproc), and run both under every start method from
# another directory.
set -eu
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib/x86_64-linux-gnu/pkgconfig"
cd "$tmp"
${CC:-cc} -std=c11 -Wall -Wextra -Werror -o outside_pc "$src/examples/outside.c" \
    $(pkg-config --cflags --libs multiproc)
mkdir cm
cat > cm/CMakeLists.txt <<CMAKE
cmake_minimum_required(VERSION 3.20)
project(outside C)
find_package(multiproc REQUIRED)
add_executable(outside_cm $src/examples/outside.c)
target_link_libraries(outside_cm PRIVATE multiproc::multiproc)
CMAKE
cmake -S cm -B cm/build -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build cm/build >/dev/null
mkdir elsewhere
cd elsewhere
for m in fork spawn forkserver; do
    MP_START_METHOD=$m ../outside_pc | grep -q "outside: ok ($m)"
    MP_START_METHOD=$m ../cm/build/outside_cm | grep -q "outside: ok ($m)"
    echo "outside program ok under $m"
done
# The man pages came with the install: man(1) finds a function by name.
if command -v man >/dev/null 2>&1; then
    MANPATH="$tmp/prefix/share/man" man 3 mp_queue_put 2>/dev/null |
        grep -q "mp_queue_put(mp_queue \*q, const void \*data"
    echo "man 3 mp_queue_put shows the call"
fi
