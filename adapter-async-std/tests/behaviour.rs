//! The shared behaviour suite, against this adapter's server on each runtime.

mod common;

mod async_std_rt {
    use super::common::RtHarness;
    use adapter_async_std::AsyncStd;

    conformance::behaviour_suite!(RtHarness(AsyncStd));

    mod over_tls {
        use super::super::common::RtHarness;
        use adapter_async_std::AsyncStd;
        use conformance::OverTls;

        conformance::tls_behaviour_suite!(OverTls::new(RtHarness(AsyncStd), "async-std over TLS"));
    }
}

mod smol_rt {
    use super::common::RtHarness;
    use adapter_async_std::Smol;

    conformance::behaviour_suite!(RtHarness(Smol::global()));

    mod over_tls {
        use super::super::common::RtHarness;
        use adapter_async_std::Smol;
        use conformance::OverTls;

        conformance::tls_behaviour_suite!(OverTls::new(RtHarness(Smol::global()), "smol over TLS"));
    }
}
