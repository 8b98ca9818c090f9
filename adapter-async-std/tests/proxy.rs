//! `serve --proxy-protocol` through the `adapter-async-std` binary, on both
//! runtimes: the shared PROXY protocol scenarios (v1, v2, under TLS, a
//! connection without one).

mod async_std_rt {
    conformance::proxy_binary_suite!(
        env!("CARGO_BIN_EXE_adapter-async-std"),
        &[("ADAPTER_RUNTIME", "async-std")]
    );
}

mod smol_rt {
    conformance::proxy_binary_suite!(
        env!("CARGO_BIN_EXE_adapter-async-std"),
        &[("ADAPTER_RUNTIME", "smol")]
    );
}
