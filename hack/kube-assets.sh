#!/usr/bin/env bash
# Provides kube-apiserver, kube-controller-manager and etcd in an envtest-style
# assets directory and prints that directory on stdout (last line).
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS, when it holds every binary we need;
#   2. a complete cache in ${XDG_CACHE_HOME:-$HOME/.cache}/swf-operator/kube-assets/v1.20.2;
#   3. a build from Debian bookworm's own `kubernetes` source package (no internet needed
#      beyond Debian's archive), which then fills the cache.
#
# Why Debian's source: this machine kind has no Docker and no internet, so kind/k3d and
# setup-envtest downloads are impossible; Debian ships the full upstream tree with vendor/.
set -euo pipefail

KUBE_VERSION=v1.20.2
DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/swf-operator/kube-assets/${KUBE_VERSION}"
NEEDED=(kube-apiserver kube-controller-manager etcd)

log() { printf 'kube-assets: %s\n' "$*" >&2; }
die() { printf 'kube-assets: ERROR: %s\n' "$*" >&2; exit 1; }

complete_dir() {
  local dir=$1 bin
  [ -n "$dir" ] && [ -d "$dir" ] || return 1
  for bin in "${NEEDED[@]}"; do [ -x "$dir/$bin" ] || return 1; done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  if complete_dir "$KUBEBUILDER_ASSETS"; then
    log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
    echo "$KUBEBUILDER_ASSETS"; exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks one of: ${NEEDED[*]}; using the cache instead"
fi

if complete_dir "$CACHE_DIR" && [ -f "$CACHE_DIR/.complete" ]; then
  log "reusing cache $CACHE_DIR"
  echo "$CACHE_DIR"; exit 0
fi

[ "$(id -u)" = 0 ] || die "building the assets installs Debian packages and needs root (or set KUBEBUILDER_ASSETS)"
command -v apt-get >/dev/null || die "apt-get not found: this script builds from Debian's packages; set KUBEBUILDER_ASSETS instead"

step() { log "step: $*"; }

step "enable deb-src for the machine's Debian archive"
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  src=/etc/apt/sources.list.d/debian.sources
  [ -f "$src" ] || die "no $src to derive a deb-src entry from; add one for bookworm by hand"
  sed 's/^Types: deb$/Types: deb-src/' "$src" > /etc/apt/sources.list.d/swf-operator-deb-src.sources
fi
apt-get update -qq >&2 || die "apt-get update failed"

step "install the build dependencies and etcd"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  golang-go rsync etcd-server golang-github-modern-go-reflect2-dev dpkg-dev make >&2 \
  || die "apt-get install of the build dependencies failed"

BUILD_DIR="${CACHE_DIR}.build"
rm -rf "$BUILD_DIR"; mkdir -p "$BUILD_DIR"
cd "$BUILD_DIR"
step "fetch Debian's kubernetes source ($DEB_VERSION) into $BUILD_DIR"
apt-get source -qq --download-only "kubernetes=$DEB_VERSION" >&2 || die "apt-get source kubernetes=$DEB_VERSION failed"
orig=""
for f in kubernetes_*.orig.tar.*; do [ -e "$f" ] && { orig=$f; break; }; done
[ -n "$orig" ] || die "the orig tarball of kubernetes was not downloaded"
mkdir src
tar -xf "$orig" -C src --strip-components=1 || die "cannot unpack $orig"
cd src

step "replace vendored reflect2 1.0.1 (segfaults on Go >= 1.18) by Debian's 1.0.2"
reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -d "$reflect2" ] || die "$reflect2 missing (package golang-github-modern-go-reflect2-dev)"
rm -rf vendor/github.com/modern-go/reflect2
cp -r "$reflect2" vendor/github.com/modern-go/reflect2

step "build kube-apiserver and kube-controller-manager (a few minutes, ~1.5 GB RAM)"
export GOFLAGS=-mod=vendor GOPROXY=off GO111MODULE=on
KUBE_GIT_VERSION=$KUBE_VERSION KUBE_GIT_TREE_STATE=clean \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >&2 \
  || die "make of kube-apiserver/kube-controller-manager failed (see output above)"

mkdir -p "$CACHE_DIR"
for bin in kube-apiserver kube-controller-manager; do
  cp "_output/bin/$bin" "$CACHE_DIR/$bin" || die "build produced no _output/bin/$bin"
done
cp /usr/bin/etcd "$CACHE_DIR/etcd" || die "no /usr/bin/etcd (package etcd-server)"
"$CACHE_DIR/kube-apiserver" --version >&2 || die "the built kube-apiserver does not run"
touch "$CACHE_DIR/.complete"
cd / && rm -rf "$BUILD_DIR"
log "assets ready in $CACHE_DIR"
echo "$CACHE_DIR"
