//! TLS through the `adapter-async-std` binary, on both runtimes: the
//! shared TLS scenarios (openssl interop, mutual TLS, hostile handshakes,
//! bad files).

mod async_std_rt {
    conformance::tls_binary_suite!(
        env!("CARGO_BIN_EXE_adapter-async-std"),
        &[("ADAPTER_RUNTIME", "async-std")]
    );
}

mod smol_rt {
    conformance::tls_binary_suite!(
        env!("CARGO_BIN_EXE_adapter-async-std"),
        &[("ADAPTER_RUNTIME", "smol")]
    );
}
