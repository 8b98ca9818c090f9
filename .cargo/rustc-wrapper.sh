#!/usr/bin/env bash
# cargo runs every rustc of this repository through this script (see
# .cargo/config.toml): `rustc-wrapper.sh RUSTC ARGS...`. For every build but
# one it only runs the rustc it was given, unchanged.
#
# The exception is a cargo-fuzz build. `cargo fuzz run decode_frame` typed at
# the repository root runs on the root's toolchain, stable (rustup picks the
# toolchain from the current directory, and cargo-fuzz runs its inner cargo
# there with RUSTUP_TOOLCHAIN already set, so fuzz/rust-toolchain.toml is not
# read), and cargo-fuzz then passes `-Zsanitizer=address`, which stable rustc
# refuses. cargo-fuzz marks its builds with `-Cpasses=sancov-module` in
# RUSTFLAGS; for those alone, let rustc accept the unstable sanitizer flag
# (RUSTC_BOOTSTRAP=1; a no-op on nightly). The stable toolchain ships the
# sanitizer runtimes, so the fuzzers are the same as nightly's. Switching to
# nightly's rustc here instead would hide the switch from cargo, which would
# then keep artifacts of an older nightly after `rustup update`.
#
# bash, not sh: dash drops environment variables whose names are not shell
# identifiers, such as cargo's CARGO_BIN_EXE_adapter-async-std for the
# integration tests; bash passes them on.
case " ${RUSTFLAGS-} " in
    *" -Cpasses=sancov-module "*) RUSTC_BOOTSTRAP=1 exec "$@" ;;
esac
exec "$@"
