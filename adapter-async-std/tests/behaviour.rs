//! The shared behaviour suite, against this adapter's server on each runtime.

mod common;

mod async_std_rt {
    use super::common::RtHarness;
    use adapter_async_std::AsyncStd;

    conformance::behaviour_suite!(RtHarness(AsyncStd));
}

mod smol_rt {
    use super::common::RtHarness;
    use adapter_async_std::Smol;

    conformance::behaviour_suite!(RtHarness(Smol::global()));
}
