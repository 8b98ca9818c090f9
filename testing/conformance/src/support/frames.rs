//! Frames for the scenarios: whole request and ack frames, runs of empty
//! Submits, the id counter's digits, and hex of bytes for messages.

use bytes::BytesMut;
use protocol::{
    ACK_FRAME_LEN, AckResult, CommandId, DEFAULT_MAX_FRAME_LEN, MessageId, REQUEST_OVERHEAD,
    RequestKind, encode_ack, encode_request,
};

/// Hex of the first bytes of `b`, for messages.
pub fn hex_head(b: &[u8]) -> String {
    let mut s: String = b.iter().take(32).map(|x| format!("{x:02x}")).collect();
    if b.len() > 32 {
        s.push_str(&format!("... ({} bytes)", b.len()));
    }
    s
}

/// The 14 bytes of one ack frame.
pub fn ack_frame(kind: RequestKind, id: &MessageId, result: AckResult) -> [u8; ACK_FRAME_LEN] {
    let mut out = BytesMut::with_capacity(ACK_FRAME_LEN);
    encode_ack(kind, id, result, &mut out);
    let mut frame = [0u8; ACK_FRAME_LEN];
    frame.copy_from_slice(&out);
    frame
}

/// One whole request frame.
pub fn request_frame(kind: RequestKind, id: &MessageId, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    if let Err(e) = encode_request(kind, id, payload, DEFAULT_MAX_FRAME_LEN, &mut out) {
        panic!(
            "scenario bug: cannot encode a {kind:?} of {} bytes: {e}",
            payload.len()
        );
    }
    out.to_vec()
}

/// The counter value an id of 8 ASCII digits spells.
pub fn counter_of(id: &MessageId) -> u32 {
    id.0.iter().fold(0u32, |n, d| {
        n.wrapping_mul(10)
            .wrapping_add(u32::from(d.wrapping_sub(b'0')))
    })
}

/// Adds 1 to a run of ASCII decimal digits, wrapping from all 9s to all 0s
/// (the id counter's rule).
pub(super) fn increment_digits(digits: &mut [u8]) {
    for d in digits.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return;
        }
    }
}

/// `n` empty-payload Submit frames with the ids `first`, `first + 1`, ...
/// (fast: the suite sends millions of them).
pub fn empty_submits(first: u32, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * REQUEST_OVERHEAD);
    let mut frame = [0u8; REQUEST_OVERHEAD];
    frame[..4].copy_from_slice(&(REQUEST_OVERHEAD as u32).to_be_bytes());
    frame[4] = CommandId::Submit.as_u8();
    frame[5..].copy_from_slice(MessageId::from_counter(first).as_bytes());
    for _ in 0..n {
        out.extend_from_slice(&frame);
        increment_digits(&mut frame[5..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use protocol::IdGenerator;

    use super::*;

    #[test]
    fn empty_submits_match_the_codec_and_wrap_like_the_id_counter() {
        let fast = empty_submits(99_999_998, 3);
        let mut ids = IdGenerator::starting_at(99_999_998);
        let slow: Vec<u8> = (0..3)
            .flat_map(|_| request_frame(RequestKind::Submit, &ids.next_id(), b""))
            .collect();
        assert_eq!(fast, slow);
        assert_eq!(&fast[2 * 13 + 5..3 * 13], b"00000000");
        assert_eq!(counter_of(&MessageId(*b"00012345")), 12345);
    }

    #[test]
    fn the_seed_frames_are_what_the_codec_makes() {
        let f = request_frame(
            RequestKind::Submit,
            &MessageId(*b"00000001"),
            b"helped-lester-8f15",
        );
        assert_eq!(f, crate::scenarios::SEED_SUBMIT);
        assert_eq!(f.len(), 31);
        let ack = ack_frame(RequestKind::Submit, &MessageId(*b"00000001"), AckResult::OK);
        assert_eq!(&ack[..], crate::scenarios::SEED_SUBMIT_ACK);
    }
}
