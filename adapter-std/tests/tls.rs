//! TLS through the `adapter-std` binary: the shared TLS scenarios
//! (openssl interop, mutual TLS, hostile handshakes, bad files).

conformance::tls_binary_suite!(env!("CARGO_BIN_EXE_adapter-std"), &[]);
