//! `serve --proxy-protocol` through the `adapter-std` binary: the shared
//! PROXY protocol scenarios (v1, v2, under TLS, a connection without one).

conformance::proxy_binary_suite!(env!("CARGO_BIN_EXE_adapter-std"), &[]);
