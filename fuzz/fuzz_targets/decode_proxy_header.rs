//! The PROXY protocol header decoder on arbitrary bytes.
//!
//! Asserts: no panic; a decoded header consumes no more than the input
//! and no more than its version's limit; every prefix of the header asks
//! for more (`Ok(None)`), and the header decodes the same with anything
//! appended after it; `Ok(None)` only for inputs shorter than the limit;
//! an error stays an error with more bytes appended (it is decided from
//! what is there, never by waiting).

#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{PROXY_V1_MAX_LEN, PROXY_V2_MAX_LEN, decode_proxy_header};

fuzz_target!(|data: &[u8]| {
    let with_more = [data, b"\0\0\0\x0e\x02 more bytes".as_slice()].concat();
    match decode_proxy_header(data) {
        Ok(Some((header, n))) => {
            assert!(n <= data.len(), "consumed {n} of {}", data.len());
            assert!(n <= PROXY_V1_MAX_LEN.max(PROXY_V2_MAX_LEN));
            for cut in 0..n {
                assert_eq!(
                    decode_proxy_header(&data[..cut]),
                    Ok(None),
                    "a prefix of {cut} of a {n}-byte header"
                );
            }
            assert_eq!(decode_proxy_header(&with_more), Ok(Some((header, n))));
        }
        Ok(None) => assert!(data.len() < PROXY_V2_MAX_LEN, "{} bytes and still waiting", data.len()),
        Err(e) => assert!(
            decode_proxy_header(&with_more).is_err(),
            "{e} became valid with more bytes"
        ),
    }
});
