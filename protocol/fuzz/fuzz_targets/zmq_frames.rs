//! Arbitrary ZeroMQ messages into the publish-input decoders (§4.2, §4.3) and the XPUB
//! subscription parser: errors are fine, panics are not, and every decoded item must
//! come back unchanged after re-encoding in the frame encoding it arrived in.
//!
//! Input layout: byte 0 picks the decoder (PULL, SUB, subscription frame, or a
//! multi-frame message split at `0xff`); for SUB, byte 1 is the channel frame's length.

#![no_main]

use fjord_protocol::zmq::{
    decode_pull_message, decode_sub_message, encode_pull_frame, encode_sub_message,
    encode_subscription_frame, parse_subscription_frame, PullEncoding,
};
use libfuzzer_sys::fuzz_target;

fn encoding_of(frame: &[u8]) -> PullEncoding {
    match frame.first() {
        Some(b'J') => PullEncoding::Json,
        Some(b'T') => PullEncoding::TPrefixed,
        _ => PullEncoding::Tnetstring,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok(item) = decode_pull_message(&[rest]) {
                let frame = encode_pull_frame(&item, encoding_of(rest));
                assert_eq!(decode_pull_message(&[frame]).as_ref(), Ok(&item));
            }
        }
        1 => {
            let Some((&len, rest)) = rest.split_first() else {
                return;
            };
            let (channel, frame) = rest.split_at(usize::from(len).min(rest.len()));
            if let Ok(item) = decode_sub_message(&[channel, frame]) {
                let again = match encoding_of(frame) {
                    PullEncoding::Json => {
                        let json = encode_pull_frame(&item, PullEncoding::Json);
                        decode_sub_message(&[item.channel.as_bytes(), &json])
                    }
                    _ => decode_sub_message(&encode_sub_message(&item)),
                };
                assert_eq!(again.as_ref(), Ok(&item));
            }
        }
        2 => {
            if let Some(event) = parse_subscription_frame(rest) {
                assert_eq!(encode_subscription_frame(&event), rest);
            }
        }
        _ => {
            let frames: Vec<&[u8]> = rest.split(|b| *b == 0xff).collect();
            let pull = decode_pull_message(&frames);
            let sub = decode_sub_message(&frames);
            assert!(frames.len() == 1 || pull.is_err());
            assert!(frames.len() == 2 || sub.is_err());
        }
    }
});
