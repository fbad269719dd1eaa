//! ZeroMQ message framing of the publish inputs: the one-frame PULL message (§4.2), the
//! two-frame SUB message (§4.3), and the subscription frames an XPUB publisher reads
//! (§4.3), which is how the relay learns which channels have listeners (§9).
//!
//! Sockets and I/O live elsewhere; this module only turns frames into items and back.

use crate::item::{ItemError, PublishItem};
use crate::tnetstring::{self, TnetstringError};

/// Why a ZeroMQ message does not carry a valid item. The publish inputs log these and
/// skip the message (§4.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message has {got} frame(s), expected {expected}")]
    FrameCount { expected: usize, got: usize },
    #[error("channel frame is not valid UTF-8 (invalid byte at offset {offset})")]
    ChannelNotUtf8 { offset: usize },
    #[error("item frame after the 'J' prefix is not a JSON document: {0}")]
    Json(String),
    #[error("item frame is not a tnetstring ({}): {source}", if *.prefixed { "offsets count from after the 'T' prefix" } else { "no prefix" })]
    Tnetstring {
        prefixed: bool,
        source: TnetstringError,
    },
    #[error("invalid item: {0}")]
    Item(#[from] ItemError),
}

/// How [`encode_pull_frame`] writes an item (§4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullEncoding {
    /// The bare tnetstring; it starts with a digit, so it needs no prefix.
    Tnetstring,
    /// `T` followed by the tnetstring.
    TPrefixed,
    /// `J` followed by compact JSON.
    Json,
}

/// Decodes a PULL-input message (§4.2): exactly one frame holding one item, which must
/// name its channel.
pub fn decode_pull_message<F: AsRef<[u8]>>(frames: &[F]) -> Result<PublishItem, FrameError> {
    match frames {
        [frame] => decode_item_frame(frame.as_ref(), None),
        _ => Err(FrameError::FrameCount {
            expected: 1,
            got: frames.len(),
        }),
    }
}

/// Decodes a SUB-input message (§4.3): `[channel, item]`. A non-empty channel frame
/// overrides any `channel` key; an empty one leaves the item's own `channel` in force,
/// as in Pushpin.
pub fn decode_sub_message<F: AsRef<[u8]>>(frames: &[F]) -> Result<PublishItem, FrameError> {
    let [channel, item] = frames else {
        return Err(FrameError::FrameCount {
            expected: 2,
            got: frames.len(),
        });
    };
    let channel =
        std::str::from_utf8(channel.as_ref()).map_err(|e| FrameError::ChannelNotUtf8 {
            offset: e.valid_up_to(),
        })?;
    decode_item_frame(item.as_ref(), Some(channel))
}

/// One item frame: `J` + JSON object, `T` + tnetstring, or a bare tnetstring (§4.2).
/// Bytes after the tnetstring value make the frame invalid, where Pushpin ignores them.
fn decode_item_frame(frame: &[u8], channel: Option<&str>) -> Result<PublishItem, FrameError> {
    match frame {
        [b'J', json @ ..] => {
            let value: serde_json::Value =
                serde_json::from_slice(json).map_err(|e| FrameError::Json(e.to_string()))?;
            Ok(PublishItem::from_json(&value, channel)?)
        }
        [b'T', rest @ ..] => decode_tnetstring_item(rest, true, channel),
        _ => decode_tnetstring_item(frame, false, channel),
    }
}

fn decode_tnetstring_item(
    bytes: &[u8],
    prefixed: bool,
    channel: Option<&str>,
) -> Result<PublishItem, FrameError> {
    let value =
        tnetstring::decode(bytes).map_err(|source| FrameError::Tnetstring { prefixed, source })?;
    Ok(PublishItem::from_tnetstring(&value, channel)?)
}

/// The single frame of a PULL message carrying `item`, channel included.
pub fn encode_pull_frame(item: &PublishItem, encoding: PullEncoding) -> Vec<u8> {
    match encoding {
        PullEncoding::Tnetstring => tnetstring::encode(&item.to_tnetstring()),
        PullEncoding::TPrefixed => {
            let value = item.to_tnetstring();
            let mut frame = Vec::with_capacity(1 + tnetstring::encoded_len(&value));
            frame.push(b'T');
            tnetstring::encode_into(&value, &mut frame);
            frame
        }
        PullEncoding::Json => {
            let mut frame = b"J".to_vec();
            frame.extend_from_slice(item.to_json().to_string().as_bytes());
            frame
        }
    }
}

/// The two frames of a PUB message carrying `item` (§4.3): the channel, which SUB
/// sockets filter on, then the item as a bare tnetstring without `channel`.
pub fn encode_sub_message(item: &PublishItem) -> [Vec<u8>; 2] {
    [
        item.channel.as_bytes().to_vec(),
        tnetstring::encode(&item.to_tnetstring_without_channel()),
    ]
}

/// A subscription change an XPUB socket reports: the proxy subscribes to a channel when
/// it gains its first local listener and unsubscribes after the last one leaves (§4.3).
/// The topic is a byte prefix as ZeroMQ filters it, usually one whole channel name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionEvent {
    Subscribe(Vec<u8>),
    Unsubscribe(Vec<u8>),
}

/// Reads an XPUB subscription frame: `0x01` + topic or `0x00` + topic. Any other frame
/// (empty, or another first byte) is not a subscription message.
pub fn parse_subscription_frame(frame: &[u8]) -> Option<SubscriptionEvent> {
    match frame {
        [1, topic @ ..] => Some(SubscriptionEvent::Subscribe(topic.to_vec())),
        [0, topic @ ..] => Some(SubscriptionEvent::Unsubscribe(topic.to_vec())),
        _ => None,
    }
}

/// The frame a SUB socket sends for `event`, the inverse of [`parse_subscription_frame`].
pub fn encode_subscription_frame(event: &SubscriptionEvent) -> Vec<u8> {
    let (flag, topic) = match event {
        SubscriptionEvent::Subscribe(topic) => (1, topic),
        SubscriptionEvent::Unsubscribe(topic) => (0, topic),
    };
    let mut frame = Vec::with_capacity(1 + topic.len());
    frame.push(flag);
    frame.extend_from_slice(topic);
    frame
}

#[cfg(test)]
mod tests;
