#!/bin/sh
# man_check.sh [SRC] - checks the man pages: the same as the header gives
# and free of warnings (gen-man.py --check); then, laid out as an install
# does, each page found by name with man(1), and each .so link's target there.
set -eu
src=${1:-$(dirname "$0")/..}
python3 "$src/scripts/gen-man.py" --check
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/share/man"
cp -r "$src/man/man3" "$tmp/share/man/"
cd "$tmp/share/man"
lookups=""
for f in man3/*.3; do
    target=$(sed -n 's/^\.so //p' "$f")
    if [ -z "$target" ]; then
        lookups="$lookups $(basename "$f" .3)"
    elif [ ! -f "$target" ]; then
        echo "man_check: $f links to $target, which is not there"
        exit 1
    elif [ -z "${linked:-}" ]; then
        linked=$(basename "$f" .3) # one link is enough to see man follow them
        lookups="$lookups $linked"
    fi
done
if ! command -v man >/dev/null 2>&1; then
    echo "man_check: no man(1) here: the lookups by name are skipped"
    exit 0
fi
for name in $lookups; do
    if ! out=$(MANPATH="$tmp/share/man" MANWIDTH=80 man 3 "$name" 2>&1) ||
        ! printf '%s\n' "$out" | sed -n '/^NAME/,/^SYNOPSIS/p' | grep -qw -- "$name"; then
        echo "man_check: 'man 3 $name' does not show its page"
        exit 1
    fi
done
echo "man_check: pages up to date, links whole, found by name:$lookups"
