//! `ServerConfig::validate` and `ClientConfig::validate`: each setting's
//! range, and an error that names the setting, the value and the range.

use std::time::Duration;

use protocol::{ClientConfig, ConfigError, MAX_FRAME_LEN_LIMIT, ServerConfig, Setting};

fn out_of_range(setting: Setting, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    Err(ConfigError::OutOfRange {
        setting,
        value,
        min,
        max,
    })
}

const COUNT_MAX: u64 = u32::MAX as u64;

#[test]
fn the_defaults_are_valid() {
    assert_eq!(ServerConfig::default().validate(), Ok(()));
    assert_eq!(ClientConfig::default().validate(), Ok(()));
    let d = ServerConfig::default();
    assert_eq!(d.max_connections, 10_000);
    assert_eq!(d.shutdown_timeout, Duration::from_secs(10));
}

#[test]
fn server_max_frame_len_must_hold_an_empty_submit() {
    let max = u64::from(MAX_FRAME_LEN_LIMIT);
    for (len, ok) in [
        (0, false),
        (12, false),
        (13, true),
        (MAX_FRAME_LEN_LIMIT, true),
        (MAX_FRAME_LEN_LIMIT + 1, false),
        (u32::MAX, false),
    ] {
        let config = ServerConfig {
            max_frame_len: len,
            ..ServerConfig::default()
        };
        let want = if ok {
            Ok(())
        } else {
            out_of_range(Setting::MaxFrameLen, len.into(), 13, max)
        };
        assert_eq!(config.validate(), want, "max_frame_len {len}");
    }
    let err = ServerConfig {
        max_frame_len: 0,
        ..ServerConfig::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "max_frame_len 0 is out of range 13..=2147483647 bytes"
    );
    assert_eq!(err.setting(), Setting::MaxFrameLen);
}

#[test]
fn client_max_frame_len_must_hold_an_ack() {
    for (len, ok) in [
        (0, false),
        (13, false),
        (14, true),
        (MAX_FRAME_LEN_LIMIT, true),
    ] {
        let config = ClientConfig {
            max_frame_len: len,
            ..ClientConfig::default()
        };
        let want = if ok {
            Ok(())
        } else {
            out_of_range(
                Setting::MaxFrameLen,
                len.into(),
                14,
                MAX_FRAME_LEN_LIMIT.into(),
            )
        };
        assert_eq!(config.validate(), want, "max_frame_len {len}");
    }
    let err = ClientConfig {
        max_frame_len: 13,
        ..ClientConfig::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "max_frame_len 13 is out of range 14..=2147483647 bytes"
    );
}

#[test]
fn low_water_must_not_be_above_high_water() {
    let config = ServerConfig {
        high_water: 1000,
        low_water: 1001,
        ..ServerConfig::default()
    };
    assert_eq!(
        config.validate(),
        out_of_range(Setting::LowWater, 1001, 0, 1000)
    );
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "low_water 1001 is out of range 0..=1000 bytes"
    );
    for (high, low) in [(1000, 1000), (1000, 0), (1, 0)] {
        let config = ServerConfig {
            high_water: high,
            low_water: low,
            ..ServerConfig::default()
        };
        assert_eq!(config.validate(), Ok(()), "high {high} low {low}");
    }
    let config = ServerConfig {
        high_water: 0,
        low_water: 0,
        ..ServerConfig::default()
    };
    assert_eq!(
        config.validate(),
        out_of_range(Setting::HighWater, 0, 1, COUNT_MAX)
    );
}

#[test]
fn counts_must_be_at_least_one() {
    let config = ServerConfig {
        max_connections: 0,
        ..ServerConfig::default()
    };
    assert_eq!(
        config.validate(),
        out_of_range(Setting::MaxConnections, 0, 1, COUNT_MAX)
    );
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "max_connections 0 is out of range 1..=4294967295"
    );
    let config = ServerConfig {
        max_pending_requests: 0,
        ..ServerConfig::default()
    };
    assert_eq!(
        config.validate(),
        out_of_range(Setting::MaxPendingRequests, 0, 1, COUNT_MAX)
    );
    let config = ClientConfig {
        max_in_flight: 0,
        ..ClientConfig::default()
    };
    assert_eq!(
        config.validate(),
        out_of_range(Setting::MaxInFlight, 0, 1, COUNT_MAX)
    );
    let one = ServerConfig {
        max_connections: 1,
        max_pending_requests: 1,
        ..ServerConfig::default()
    };
    assert_eq!(one.validate(), Ok(()));
}

#[test]
fn a_timeout_that_is_on_must_be_at_least_a_millisecond() {
    let zero = Some(Duration::ZERO);
    let servers = [
        (
            Setting::IdleTimeout,
            ServerConfig {
                idle_timeout: zero,
                ..ServerConfig::default()
            },
        ),
        (
            Setting::FrameTimeout,
            ServerConfig {
                frame_timeout: zero,
                ..ServerConfig::default()
            },
        ),
        (
            Setting::WriteStallTimeout,
            ServerConfig {
                write_stall_timeout: zero,
                ..ServerConfig::default()
            },
        ),
        (
            Setting::LingerQuiet,
            ServerConfig {
                linger_quiet: Duration::ZERO,
                ..ServerConfig::default()
            },
        ),
        (
            // Below a millisecond counts as 0 ms.
            Setting::IdleTimeout,
            ServerConfig {
                idle_timeout: Some(Duration::from_micros(999)),
                ..ServerConfig::default()
            },
        ),
    ];
    for (setting, config) in servers {
        assert_eq!(
            config.validate(),
            out_of_range(setting, 0, 1, u64::MAX),
            "{setting}"
        );
    }
    let err = ServerConfig {
        idle_timeout: zero,
        ..ServerConfig::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "idle_timeout 0 is out of range 1..=18446744073709551615 ms"
    );
    let clients = [
        (
            Setting::ResponseTimeout,
            ClientConfig {
                response_timeout: zero,
                ..ClientConfig::default()
            },
        ),
        (
            Setting::WriteStallTimeout,
            ClientConfig {
                write_stall_timeout: zero,
                ..ClientConfig::default()
            },
        ),
    ];
    for (setting, config) in clients {
        assert_eq!(
            config.validate(),
            out_of_range(setting, 0, 1, u64::MAX),
            "{setting}"
        );
    }
    // Off is fine, and so is one millisecond.
    let off = ServerConfig {
        idle_timeout: None,
        frame_timeout: None,
        write_stall_timeout: None,
        ..ServerConfig::default()
    };
    assert_eq!(off.validate(), Ok(()));
    let one = ServerConfig {
        idle_timeout: Some(Duration::from_millis(1)),
        frame_timeout: Some(Duration::from_millis(1)),
        write_stall_timeout: Some(Duration::from_millis(1)),
        linger_quiet: Duration::from_millis(1),
        ..ServerConfig::default()
    };
    assert_eq!(one.validate(), Ok(()));
    let off = ClientConfig {
        response_timeout: None,
        write_stall_timeout: None,
        ..ClientConfig::default()
    };
    assert_eq!(off.validate(), Ok(()));
}

#[test]
fn linger_quiet_matters_only_while_lingering_is_on() {
    // With lingering off (None, or a zero linger, which closes at once),
    // linger_quiet is never used and is not checked.
    for linger in [None, Some(Duration::ZERO)] {
        let config = ServerConfig {
            linger,
            linger_quiet: Duration::ZERO,
            ..ServerConfig::default()
        };
        assert_eq!(config.validate(), Ok(()), "linger {linger:?}");
    }
}

#[test]
fn the_first_setting_out_of_range_is_named() {
    let config = ServerConfig {
        max_frame_len: 1,
        max_connections: 0,
        idle_timeout: Some(Duration::ZERO),
        ..ServerConfig::default()
    };
    assert_eq!(
        config.validate().unwrap_err().setting(),
        Setting::MaxFrameLen
    );
    let config = ServerConfig {
        idle_timeout: Some(Duration::ZERO),
        max_connections: 0,
        ..ServerConfig::default()
    };
    assert_eq!(
        config.validate().unwrap_err().setting(),
        Setting::IdleTimeout
    );
}

#[test]
fn every_setting_has_its_field_name_and_unit() {
    let names = [
        (Setting::MaxFrameLen, "max_frame_len", " bytes"),
        (Setting::HighWater, "high_water", " bytes"),
        (Setting::LowWater, "low_water", " bytes"),
        (Setting::MaxPendingRequests, "max_pending_requests", ""),
        (Setting::IdleTimeout, "idle_timeout", " ms"),
        (Setting::FrameTimeout, "frame_timeout", " ms"),
        (Setting::WriteStallTimeout, "write_stall_timeout", " ms"),
        (Setting::LingerQuiet, "linger_quiet", " ms"),
        (Setting::MaxConnections, "max_connections", ""),
        (Setting::MaxInFlight, "max_in_flight", ""),
        (Setting::ResponseTimeout, "response_timeout", " ms"),
    ];
    for (setting, name, unit) in names {
        assert_eq!(setting.name(), name);
        assert_eq!(setting.to_string(), name);
        assert_eq!(setting.unit(), unit);
    }
}
