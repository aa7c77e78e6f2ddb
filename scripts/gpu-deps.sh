#!/usr/bin/env bash
# The GPU machine reaches no package registry, and its image lacks the Debian libraries the build needs.
# Run this once on a Debian 12 machine with apt (a developer's): it downloads those packages into .gpu-deps/
# (ignored by git). Carry `.gpu-deps` with the device run; scripts/gpu-check.sh unpacks it into a private prefix.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Qt Core + Test (and moc) for the QtTest suites, PCRE2 and ICU for the tokenizer, nlohmann-json, pkg-config,
# cpp-httplib for `mwb serve`, yaml-cpp for `mwb export` (with the headers and .pc files its pkg-config entry requires: OpenSSL, zlib,
# Brotli), and the shared libraries Qt Core links against that a CUDA image may lack.
packages=(
  qt6-base-dev qt6-base-dev-tools qmake6 qmake6-bin libqt6core6 libqt6test6
  libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
  libicu-dev libicu72 icu-devtools nlohmann-json3-dev
  libdouble-conversion3 libb2-1 libgomp1 libglib2.0-0 libzstd1
  pkgconf pkgconf-bin libpkgconf3
  libcpp-httplib-dev libcpp-httplib0.11 libssl-dev libssl3 zlib1g-dev libbrotli-dev libbrotli1
  libyaml-cpp-dev libyaml-cpp0.7
)
mkdir -p "$root/.gpu-deps"
cd "$root/.gpu-deps"
apt-get download "${packages[@]}"
du -sh "$root/.gpu-deps"
