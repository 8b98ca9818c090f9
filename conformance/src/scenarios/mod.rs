//! The scenarios. Each takes a harness, starts its own servers, and stops
//! them before it returns; each finishes in bounded time.

use crate::{Harness, ServerSpec};

/// 1. Basic connect / request / response.
pub fn basic_request_response(h: &dyn Harness) {
    let server = h.start(ServerSpec::default());
    let _ = server.endpoint();
    server.shutdown();
}

/// Expands to one `#[test]` per scenario, run against `$harness`.
#[macro_export]
macro_rules! behaviour_suite {
    ($harness:expr) => {
        #[test]
        fn basic_request_response() {
            $crate::scenarios::basic_request_response(&$harness)
        }
    };
}
