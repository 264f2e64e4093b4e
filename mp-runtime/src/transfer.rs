//! OS handles inside serialized values.
//!
//! While a value serializes, a thread-local side table collects duplicates of the
//! OS handles it contains (queues, pipes, shared memory, locks); each handle is
//! written as an index into that table. The table travels beside the bytes
//! (`SCM_RIGHTS` on Unix; on Windows as records inside the frame, see
//! `sys/windows/handles.rs`) and, on receipt, is installed while the value
//! deserializes; each handle takes its entry by index. Guards restore the tables
//! on every path, so a failed encode never leaks a handle into the next message,
//! and an index that is missing or used twice is a `Codec` error, never a panic.

use std::cell::RefCell;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::error::CodecError;
use crate::sys::{self, BorrowedHandle, OsHandle};

thread_local! {
    static OUTGOING: RefCell<Option<Vec<OsHandle>>> = const { RefCell::new(None) };
        static INCOMING: RefCell<Option<Vec<Option<OsHandle>>>> = const { RefCell::new(None) };
    /// serde formats may drop a custom error's text; keep ours for the report.
    static HANDLE_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

pub(crate) fn remember(message: String) -> String {
    HANDLE_ERROR.with(|cell| *cell.borrow_mut() = Some(message.clone()));
    message
}

/// The handle error behind a failed encode/decode, if one caused it.
fn explain(error: CodecError) -> CodecError {
    match HANDLE_ERROR.with(|cell| cell.borrow_mut().take()) {
        Some(message) => CodecError::new(message),
        None => error,
    }
}

/// Encoded bytes and the handles that travel with them.
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) handles: Vec<OsHandle>,
}

struct Restore<T: 'static> {
    key: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    previous: Option<Option<T>>,
}

impl<T: 'static> Restore<T> {
    fn install(key: &'static std::thread::LocalKey<RefCell<Option<T>>>, value: T) -> Self {
        let previous = key.with(|cell| cell.replace(Some(value)));
        Restore {
            key,
            previous: Some(previous),
        }
    }

    fn finish(mut self) -> Option<T> {
        let previous = self.previous.take().unwrap_or(None);
        self.key.with(|cell| cell.replace(previous))
    }
}

impl<T: 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            self.key.with(|cell| cell.replace(previous));
        }
    }
}

/// Encodes `value`, collecting the handles inside it.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Encoded, CodecError> {
    HANDLE_ERROR.with(|cell| cell.borrow_mut().take());
    let guard = Restore::install(&OUTGOING, Vec::new());
    let bytes = codec::encode(value);
    let handles = guard.finish().unwrap_or_default();
    let bytes = bytes.map_err(explain)?;
    if handles.len() > sys::MAX_HANDLES_PER_MESSAGE {
        return Err(CodecError::new(format!(
            "a message may carry at most {} handles (queues, pipes, locks, shared memory); \
             this one has {}",
            sys::MAX_HANDLES_PER_MESSAGE,
            handles.len()
        )));
    }
    Ok(Encoded { bytes, handles })
}

/// Decodes `bytes`, giving the handles that came with them to the values inside.
/// Handles nobody claimed are closed.
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    handles: Vec<OsHandle>,
) -> Result<T, CodecError> {
    HANDLE_ERROR.with(|cell| cell.borrow_mut().take());
    let guard = Restore::install(&INCOMING, handles.into_iter().map(Some).collect());
    let value = codec::decode(bytes);
    drop(guard);
    value.map_err(explain)
}

/// For a handle's `Serialize`: registers a duplicate of `handle` with the message
/// being encoded and returns its index.
pub(crate) fn attach(handle: BorrowedHandle<'_>) -> Result<u32, String> {
    let duplicate = sys::duplicate_handle(handle)
        .map_err(|e| remember(format!("could not duplicate a handle for sending: {e}")))?;
    OUTGOING.with(|cell| match cell.borrow_mut().as_mut() {
        Some(table) => {
            table.push(duplicate);
            Ok((table.len() - 1) as u32)
        }
        None => Err(remember(
            "an mp handle can only be serialized by mp itself, as an argument or result of a \
             job; it cannot be written to other formats"
                .to_string(),
        )),
    })
}

/// For a handle's `Deserialize`: takes the handle at `index` of the message being decoded.
pub(crate) fn detach(index: u32) -> Result<OsHandle, String> {
    INCOMING.with(|cell| match cell.borrow_mut().as_mut() {
        Some(table) => table
            .get_mut(index as usize)
            .and_then(Option::take)
            .ok_or_else(|| {
                remember(format!(
                    "handle {index} is missing from the message or was used twice"
                ))
            }),
        None => Err(remember(
            "an mp handle can only be deserialized by mp itself".to_string(),
        )),
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    /// A toy handle type, serialized the way mp's handles are.
    struct Sock(UnixStream);

    impl Serialize for Sock {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let index = attach(self.0.as_fd()).map_err(serde::ser::Error::custom)?;
            s.serialize_u32(index)
        }
    }

    impl<'de> Deserialize<'de> for Sock {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let index = u32::deserialize(d)?;
            let fd = detach(index).map_err(serde::de::Error::custom)?;
            Ok(Sock(UnixStream::from(fd)))
        }
    }

    #[test]
    fn handles_round_trip_and_tables_are_cleared() {
        let (a, _b) = UnixStream::pair().unwrap();
        let encoded = encode(&(1u8, Sock(a), "x")).unwrap();
        assert_eq!(encoded.handles.len(), 1);
        let (n, _sock, s): (u8, Sock, String) = decode(&encoded.bytes, encoded.handles).unwrap();
        assert_eq!((n, s.as_str()), (1, "x"));
        OUTGOING.with(|c| assert!(c.borrow().is_none()));
        INCOMING.with(|c| assert!(c.borrow().is_none()));
    }

    #[test]
    fn missing_handle_is_a_codec_error() {
        let (a, _b) = UnixStream::pair().unwrap();
        let encoded = encode(&Sock(a)).unwrap();
        let err = decode::<Sock>(&encoded.bytes, Vec::new()).err().unwrap();
        assert!(err.message().contains("missing"), "{err}");
    }

    #[test]
    fn serializing_outside_mp_is_an_error() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(postcard::to_allocvec(&Sock(a)).is_err());
    }
}
