//! `proptest` strategies for packets and ids (feature `proptest`).

use bytes::Bytes;
use proptest::prelude::*;

use crate::codec::Packet;
use crate::wire::{AckResult, MessageId, RequestKind};

/// Any 8-byte id.
pub fn message_id() -> impl Strategy<Value = MessageId> {
    any::<[u8; 8]>().prop_map(MessageId)
}

/// Either request kind.
pub fn request_kind() -> impl Strategy<Value = RequestKind> {
    prop_oneof![Just(RequestKind::Conn), Just(RequestKind::Submit)]
}

/// A payload of up to `max_len` bytes.
pub fn payload(max_len: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..=max_len).prop_map(Bytes::from)
}

/// Any request packet with a payload of up to `max_payload` bytes.
pub fn request(max_payload: usize) -> impl Strategy<Value = Packet> {
    (request_kind(), message_id(), payload(max_payload))
        .prop_map(|(kind, id, payload)| Packet::request(kind, id, payload))
}

/// Any ack packet, with any result byte.
pub fn ack() -> impl Strategy<Value = Packet> {
    (request_kind(), message_id(), any::<u8>())
        .prop_map(|(kind, id, r)| Packet::ack(kind, id, AckResult(r)))
}

/// Any packet of the four.
pub fn packet(max_payload: usize) -> impl Strategy<Value = Packet> {
    prop_oneof![request(max_payload), ack()]
}
