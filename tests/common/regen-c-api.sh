#!/usr/bin/env bash
# Regenerates tests/common/c_api_bindings.rs: bindgen's output for the ncnn C
# API functions the tests call (the allowlist in tests/bindgen_c_api.rs), from
# the c_api.h of the ncnn this crate builds against. Run it against the
# release build.rs pins (GENERATED_FROM in tests/bindgen_c_api.rs says which),
# then review and commit the diff.
#
# Needs libclang (Debian: apt-get install libclang-dev; elsewhere set
# LIBCLANG_PATH to the directory holding libclang.so). bindgen itself is a
# dev-dependency that loads libclang when it runs, so nothing to install here.
# Extra arguments go to cargo (e.g. --target-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/../.."
NCNN_L2NORM_REGENERATE_C_API=1 cargo test --release "$@" --test bindgen_c_api -- --nocapture
