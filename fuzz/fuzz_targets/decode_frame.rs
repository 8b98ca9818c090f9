//! The frame layer on arbitrary bytes, under the default limit and under a
//! small limit taken from the first byte.
//!
//! Asserts: no panic; what is consumed never exceeds the input; every frame
//! re-encodes to exactly the bytes it was split from; `Ok(None)` and errors
//! leave the buffer untouched, and each happens exactly when the header says so.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol::{
    DEFAULT_MAX_FRAME_LEN, DecodeError, FrameDecoder, HEADER_LEN, MIN_FRAME_LEN, decode_frame,
};

fuzz_target!(|data: &[u8]| {
    check(data, DEFAULT_MAX_FRAME_LEN);
    // A limit small enough for short inputs to reach `FrameTooLong`; it may be
    // below MIN_FRAME_LEN, where every header is refused.
    let small = data.first().map_or(0, |&b| u32::from(b));
    check(data, small);
    // The configured form must agree with the function it wraps.
    let decoder = FrameDecoder::new(small);
    check(data, decoder.max_frame_len());
});

fn check(input: &[u8], max: u32) {
    let mut buf = BytesMut::from(input);
    let mut consumed = 0usize;
    let mut out = BytesMut::new();
    loop {
        let before = buf.clone();
        let declared = buf
            .first_chunk::<HEADER_LEN>()
            .map(|h| u32::from_be_bytes(*h));
        match decode_frame(&mut buf, max) {
            Ok(Some(frame)) => {
                let len = frame.wire_len();
                let declared = declared.expect("a frame was decoded without a header");
                assert_eq!(usize::try_from(declared).ok(), Some(len));
                assert!(declared >= MIN_FRAME_LEN && declared <= max);
                let end = consumed + len;
                assert!(
                    end <= input.len(),
                    "consumed {end} of {} bytes",
                    input.len()
                );
                out.clear();
                frame.encode(&mut out).expect("a decoded frame re-encodes");
                assert_eq!(&out[..], &input[consumed..end]);
                assert_eq!(frame.packet().len(), len - HEADER_LEN);
                consumed = end;
                assert_eq!(&buf[..], &input[consumed..]);
            }
            Ok(None) => {
                assert_eq!(buf, before, "Ok(None) touched the buffer");
                match declared {
                    None => assert!(buf.len() < HEADER_LEN),
                    Some(d) => {
                        assert!(d >= MIN_FRAME_LEN && d <= max);
                        assert!((buf.len() as u64) < u64::from(d));
                    }
                }
                break;
            }
            Err(e) => {
                assert_eq!(buf, before, "an error touched the buffer");
                let d = declared.expect("an error without a header");
                match e {
                    DecodeError::FrameTooShort { len } => {
                        assert_eq!(len, d);
                        assert!(d < MIN_FRAME_LEN);
                    }
                    DecodeError::FrameTooLong { len, max: m } => {
                        assert_eq!((len, m), (d, max));
                        assert!(d >= MIN_FRAME_LEN && d > max);
                    }
                    other => panic!("the frame layer returned a packet error: {other:?}"),
                }
                break;
            }
        }
    }
    assert!(consumed <= input.len());
    assert_eq!(consumed + buf.len(), input.len());
}
