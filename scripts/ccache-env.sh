# Sourced by the build scripts: compile through ccache, shared between clones of this
# repository on one machine (CI runs on a fresh clone each time). The base directory makes the
# paths ccache hashes relative to the checkout, and hash_dir off lets two checkouts at
# different paths share results (debug info then names the first checkout's paths).
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_BASEDIR="$PWD"
  export CCACHE_NOHASHDIR=1
  export CCACHE_DIR="${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ocx-ccache}"
  export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-8G}"
  export CCACHE_COMPRESS=1
  OCX_CMAKE_LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
else
  OCX_CMAKE_LAUNCHER=()
fi
