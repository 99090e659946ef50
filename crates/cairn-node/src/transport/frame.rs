//! Frames on a stream: a u32 big-endian body length, then the postcard body.
//!
//! Invariant: no frame longer than [`MAX_FRAME`] is ever sent, and a length
//! prefix above it is rejected before any buffer is allocated for the body.

use super::TransportError;
use cairn_core::wire::MAX_FRAME;
use quinn::{RecvStream, SendStream};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The size of the length prefix.
pub(crate) const PREFIX_LEN: usize = 4;

/// Encodes `value` as one frame (prefix and body), refusing bodies over the limit.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, TransportError> {
    let mut frame = vec![0u8; PREFIX_LEN];
    frame = postcard::to_extend(value, frame)
        .map_err(|error| TransportError::Encode(error.to_string()))?;
    let body_len = frame.len() - PREFIX_LEN;
    if body_len > MAX_FRAME {
        return Err(TransportError::FrameTooLarge {
            len: body_len,
            max: MAX_FRAME,
        });
    }
    // body_len <= MAX_FRAME < u32::MAX, so the cast is exact.
    frame[..PREFIX_LEN].copy_from_slice(&(body_len as u32).to_be_bytes());
    Ok(frame)
}

/// The body length announced by a prefix, if it is within the limit.
pub(crate) fn body_len(prefix: [u8; PREFIX_LEN]) -> Result<usize, TransportError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(TransportError::FrameTooLarge {
            len,
            max: MAX_FRAME,
        });
    }
    Ok(len)
}

/// Decodes one frame body; trailing bytes after the message are an error.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, TransportError> {
    let (value, rest) = postcard::take_from_bytes(body)
        .map_err(|error| TransportError::Decode(error.to_string()))?;
    if !rest.is_empty() {
        return Err(TransportError::Decode(format!(
            "{} unexpected bytes after the message",
            rest.len()
        )));
    }
    Ok(value)
}

/// Writes one frame to `send` (does not finish the stream).
pub(crate) async fn write_frame<T: Serialize>(
    send: &mut SendStream,
    value: &T,
) -> Result<(), TransportError> {
    let frame = encode(value)?;
    send.write_all(&frame)
        .await
        .map_err(|error| TransportError::Stream(format!("cannot write a frame: {error}")))
}

/// Reads one frame from `recv` and decodes it.
pub(crate) async fn read_frame<T: DeserializeOwned>(
    recv: &mut RecvStream,
) -> Result<T, TransportError> {
    let mut prefix = [0u8; PREFIX_LEN];
    recv.read_exact(&mut prefix)
        .await
        .map_err(|error| TransportError::Stream(format!("cannot read a frame length: {error}")))?;
    let mut body = vec![0u8; body_len(prefix)?];
    recv.read_exact(&mut body)
        .await
        .map_err(|error| TransportError::Stream(format!("cannot read a frame body: {error}")))?;
    decode(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::wire::{Request, Response};

    #[test]
    fn a_frame_is_a_big_endian_length_then_the_postcard_body() {
        let frame = encode(&Request::Ping).expect("encode");
        assert_eq!(frame, vec![0, 0, 0, 1, 0x02]);
        let len = body_len([frame[0], frame[1], frame[2], frame[3]]).expect("len");
        assert_eq!(
            decode::<Request>(&frame[PREFIX_LEN..PREFIX_LEN + len]).expect("decode"),
            Request::Ping
        );
    }

    #[test]
    fn a_length_over_the_limit_is_refused() {
        assert!(body_len((MAX_FRAME as u32).to_be_bytes()).is_ok());
        assert!(matches!(
            body_len((MAX_FRAME as u32 + 1).to_be_bytes()),
            Err(TransportError::FrameTooLarge { len, max: MAX_FRAME }) if len == MAX_FRAME + 1
        ));
        assert!(body_len(u32::MAX.to_be_bytes()).is_err());
    }

    #[test]
    fn a_body_over_the_limit_is_not_encoded() {
        let huge = Response::Error {
            reason: "x".repeat(MAX_FRAME),
        };
        assert!(matches!(
            encode(&huge),
            Err(TransportError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn garbage_and_trailing_bytes_do_not_decode() {
        assert!(matches!(
            decode::<Request>(&[0xff, 0xff]),
            Err(TransportError::Decode(_))
        ));
        assert!(matches!(
            decode::<Request>(&[]),
            Err(TransportError::Decode(_))
        ));
        assert!(matches!(
            decode::<Request>(&[0x02, 0x00]),
            Err(TransportError::Decode(_))
        ));
    }
}
