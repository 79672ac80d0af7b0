#!/bin/sh
# The floor plan of DESIGN.md, checked over #include lines: a module under
# src/ includes only itself and modules on lower floors, and the command-line
# tools include only the public header, their own headers and the one
# internal header api/internal.h. Prints every violation; exits 1 if any.
#   0 util  1 core  2 proto data cpu cuda dist  3 layers  4 net  5 solvers  6 api
cd "$(dirname "$0")/.." || exit 2
floor() {
    case "$1" in
    util) echo 0 ;; core) echo 1 ;; proto | data | cpu | cuda | dist) echo 2 ;;
    layers) echo 3 ;; net) echo 4 ;; solvers) echo 5 ;; api) echo 6 ;; *) echo -1 ;;
    esac
}
bad=0
for f in $(find src -name '*.c' -o -name '*.h' -o -name '*.cc' -o -name '*.cu' -o -name '*.cuh' | sort); do
    mod=$(echo "$f" | cut -d/ -f2)
    mine=$(floor "$mod")
    if [ "$mine" -lt 0 ]; then
        echo "$f: src/$mod is not a module of the floor plan"
        bad=1
        continue
    fi
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z0-9_]*\)\/.*/\1/p' "$f" | sort -u); do
        theirs=$(floor "$inc")
        if [ "$theirs" -lt 0 ] || [ "$theirs" -gt "$mine" ]; then
            echo "$f: includes $inc/ (floor $theirs) from $mod/ (floor $mine)"
            bad=1
        fi
    done
done
for f in tools/*.c tools/*.h; do
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" | while read -r inc; do
        case "$inc" in
        crema.h | api/internal.h | caffe.pb-c.h) ;;
        */*) echo "$f: includes \"$inc\"; tools use crema.h or api/internal.h" ;;
        *) [ -f "tools/$inc" ] || echo "$f: includes \"$inc\", not a tools/ header" ;;
        esac
    done
done | grep . && bad=1
[ "$bad" -eq 0 ] && echo "floors: every #include goes down"
exit "$bad"
