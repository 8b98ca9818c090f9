//! The scenarios. Each takes a harness, starts its own servers, drives them
//! with blocking std sockets (see [`crate::support`]), and stops them before
//! it returns; each finishes in bounded time (a few seconds at most).
//!
//! The numbers refer to the socket behaviours of `docs/PROTOCOL.md` (section 10).

mod app;
mod basic;
mod crowds;
mod fairness;
mod flow;
mod hostile;
mod lifecycle;
mod timeouts;

pub use app::{
    a_panicking_handler_costs_only_its_connection_and_frees_its_slot,
    handler_refusal_keeps_the_connection_open,
    require_conn_refuses_submits_until_a_conn_is_accepted,
};
pub use basic::{
    SEED_SUBMIT, SEED_SUBMIT_ACK, basic_tcp_request_response_matches_the_seed_bytes,
    basic_unix_socket_request_response,
    fifty_clients_pipelining_200_submits_get_every_ack_in_order,
    frame_split_anywhere_is_answered_once_complete,
    several_frames_in_one_write_are_all_answered_in_order, silent_connection_does_not_delay_others,
};
pub use crowds::{
    huge_declared_lengths_cost_no_memory, slow_consumers_are_bounded_and_closed_by_write_stall,
    slowloris_many_connections_all_closed_at_frame_timeout,
};
pub use fairness::flooding_clients_starve_no_connection;
pub use flow::backpressure_stops_reading_from_a_client_that_does_not_read;
pub use hostile::{
    malformed_frames_close_only_their_connection_after_earlier_acks,
    max_frame_len_is_inclusive_and_enforced,
};
pub use lifecycle::{
    graceful_shutdown_answers_every_fully_sent_request,
    graceful_shutdown_under_load_gives_every_client_an_ordered_prefix,
    half_close_still_gets_every_ack_then_eof, over_max_connections_is_closed_at_once_others_served,
    partial_frame_then_fin_gets_the_complete_acks_then_close,
    reset_by_peer_leaves_the_server_serving_others,
    restarted_server_binds_the_same_port_through_time_wait,
};
pub use timeouts::{
    idle_timeout_closes_idle_connections_only,
    idle_timeouts_close_many_connections_while_a_busy_one_is_served,
    slowloris_partial_frame_is_closed_by_frame_timeout,
    write_stall_closes_a_client_that_never_reads,
};

/// Expands to one `#[test]` per scenario, run against `$harness` (an
/// expression whose reference is a `&dyn Harness`, e.g. a unit struct).
/// Each test is named after what it proves.
#[macro_export]
macro_rules! behaviour_suite {
    ($harness:expr) => {
        // Over TCP through the suite's own clients: these also run over
        // TLS (see `tls_behaviour_suite!`).
        $crate::behaviour_suite!(@tls_able $harness);
        $crate::behaviour_suite!(@tests $harness;
            // 1. basic connect / request / response (TCP: above)
            basic_unix_socket_request_response,
            // 6. read timeouts on many connections
            idle_timeouts_close_many_connections_while_a_busy_one_is_served,
            // 7. a peer that does not read
            backpressure_stops_reading_from_a_client_that_does_not_read,
            // 8. a write deadline
            write_stall_closes_a_client_that_never_reads,
            // ends of conversations, hostile input, the application
            half_close_still_gets_every_ack_then_eof,
            a_panicking_handler_costs_only_its_connection_and_frees_its_slot,
            slowloris_partial_frame_is_closed_by_frame_timeout,
            restarted_server_binds_the_same_port_through_time_wait,
        );
        // Load by the hundred connections or the hundred thousand requests,
        // and scenarios that measure how long a connection waits under it:
        // each runs while no other scenario of the binary does (see
        // `process::exclusive_turn`), so on a 2-core machine a neighbour's
        // load never reads as this server's unfairness.
        $crate::behaviour_suite!(@exclusive $harness;
            fifty_clients_pipelining_200_submits_get_every_ack_in_order,
            flooding_clients_starve_no_connection,
            graceful_shutdown_under_load_gives_every_client_an_ordered_prefix,
            slowloris_many_connections_all_closed_at_frame_timeout,
        );
        // These also measure the process' resident memory (the server runs
        // in it): each runs alone in a child process, see `process::run_alone`.
        $crate::behaviour_suite!(@alone $harness;
            huge_declared_lengths_cost_no_memory,
            slow_consumers_are_bounded_and_closed_by_write_stall,
        );
    };
    (@tls_able $harness:expr) => {
        $crate::behaviour_suite!(@tests $harness;
            // 1. basic connect / request / response
            basic_tcp_request_response_matches_the_seed_bytes,
            // 2. a read with no data yet
            silent_connection_does_not_delay_others,
            // 3. a read that returns part of a frame
            frame_split_anywhere_is_answered_once_complete,
            // 4. a read that returns several frames
            several_frames_in_one_write_are_all_answered_in_order,
            // 5. a read deadline
            idle_timeout_closes_idle_connections_only,
            // 9. connection reset by peer
            reset_by_peer_leaves_the_server_serving_others,
            // pipelining, ends of conversations, limits, hostile input, the application
            partial_frame_then_fin_gets_the_complete_acks_then_close,
            graceful_shutdown_answers_every_fully_sent_request,
            over_max_connections_is_closed_at_once_others_served,
            malformed_frames_close_only_their_connection_after_earlier_acks,
            max_frame_len_is_inclusive_and_enforced,
            require_conn_refuses_submits_until_a_conn_is_accepted,
            handler_refusal_keeps_the_connection_open,
        );
    };
    (@alone $harness:expr; $($scenario:ident),* $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                let _turn = $crate::process::exclusive_turn();
                $crate::process::run_alone(
                    concat!(module_path!(), "::", stringify!($scenario)),
                    || $crate::scenarios::$scenario(&$harness),
                )
            }
        )*
    };
    (@exclusive $harness:expr; $($scenario:ident),* $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                let _turn = $crate::process::exclusive_turn();
                $crate::scenarios::$scenario(&$harness)
            }
        )*
    };
    (@tests $harness:expr; $($scenario:ident),* $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                let _turn = $crate::process::shared_turn();
                $crate::scenarios::$scenario(&$harness)
            }
        )*
    };
}

/// The behaviour suite over TLS, for `$harness` wrapped in
/// [`OverTls`](crate::OverTls): the scenarios whose clients are the
/// suite's own (which then speak TLS) over TCP. Left out: those that
/// drive raw sockets below TLS on purpose (small kernel buffers, a restart
/// on the same port), run over Unix sockets (half-close), write from a
/// second handle of the socket (slowloris trickle, shutdown under load:
/// a TLS stream has one owner), or measure memory.
#[macro_export]
macro_rules! tls_behaviour_suite {
    ($harness:expr) => {
        $crate::behaviour_suite!(@tls_able $harness);
        $crate::behaviour_suite!(@exclusive $harness;
            fifty_clients_pipelining_200_submits_get_every_ack_in_order,
        );
        #[test]
        fn mutual_tls_hands_the_handler_each_clients_verified_identity() {
            let _turn = $crate::process::shared_turn();
            ($harness).mutual_tls_hands_the_handler_each_clients_verified_identity()
        }
    };
}
