//! The manager's wire protocol: frames, requests and responses.
//!
//! A frame is `[u32 LE length][postcard body]` on a TCP stream. Before a peer
//! has authenticated, frames are bounded by [`HANDSHAKE_MAX`]; after, by
//! `mp::max_frame_size()`. A length over the bound is refused before anything
//! is allocated, and the body buffer grows only as bytes arrive. Values travel
//! as the bytes `crate::codec` made of them: the server never decodes user
//! data, it stores and compares bytes.

use std::fmt;
use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec;
use crate::error::{CodecError, Result};

/// First bytes the server sends: identifies the protocol and its version.
pub(crate) const MAGIC: [u8; 8] = *b"mp-mgr\x00\x01";

/// The encoding of [`Response::Pending`].
pub(crate) const PENDING: [u8; 1] = [0];

/// Largest frame accepted before authentication.
pub(crate) const HANDSHAKE_MAX: usize = 4096;

/// Raw bytes that serialize as one byte string (not a sequence of `u8`s) and
/// borrow from the frame they are read from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bytes<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Bytes<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> std::result::Result<Self::Value, E> {
                Ok(Bytes(v))
            }
        }
        deserializer.deserialize_bytes(Visit)
    }
}

/// Owned bytes with the same wire form as [`Bytes`] (used where a value must
/// outlive its frame: a serialized proxy's authkey).
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct ByteBuf(pub(crate) Vec<u8>);

impl fmt::Debug for ByteBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // It may hold an authkey: never print the bytes.
        write!(f, "ByteBuf({} bytes)", self.0.len())
    }
}

impl Serialize for ByteBuf {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(
                self,
                v: Vec<u8>,
            ) -> std::result::Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<ByteBuf, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(ByteBuf(out))
            }
        }
        deserializer.deserialize_byte_buf(Visit)
    }
}

/// What kind of object a proxy refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Kind {
    Dict,
    List,
    Namespace,
    Queue,
    Lock,
    RLock,
    Semaphore,
    Event,
    Condition,
    Barrier,
    Value,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Dict => "dict",
            Kind::List => "list",
            Kind::Namespace => "namespace",
            Kind::Queue => "queue",
            Kind::Lock => "lock",
            Kind::RLock => "rlock",
            Kind::Semaphore => "semaphore",
            Kind::Event => "event",
            Kind::Condition => "condition",
            Kind::Barrier => "barrier",
            Kind::Value => "value",
        }
    }
}

/// How long a blocking operation may wait on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Wait {
    /// Do not wait: succeed at once or fail.
    No,
    /// Wait as long as it takes (the server still notices a client that dies).
    Forever,
    /// Wait at most this many microseconds.
    Micros(u64),
}

impl Wait {
    pub(crate) fn from_timeout(timeout: Duration) -> Wait {
        Wait::Micros(u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX))
    }

    /// The instant the wait ends; `None` for `Forever`.
    pub(crate) fn deadline(self, now: Instant) -> Option<Instant> {
        match self {
            Wait::No => Some(now),
            Wait::Forever => None,
            // A deadline past what `Instant` can hold is no deadline.
            Wait::Micros(us) => now.checked_add(Duration::from_micros(us)),
        }
    }
}

/// The owner of a re-entrant lock: a process (random token) and a thread in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Owner {
    pub(crate) process: u64,
    pub(crate) thread: u64,
}

/// Client to server, after authentication.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request<'a> {
    /// Create an object, or with a name, get the one of that name (creating it
    /// the first time).
    Create {
        kind: Kind,
        #[serde(borrow)]
        name: Option<&'a str>,
        #[serde(borrow)]
        init: Init<'a>,
    },
    /// One operation on one object.
    Call {
        id: u64,
        #[serde(borrow)]
        op: Op<'a>,
    },
}

/// The initial state of a new object.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Init<'a> {
    Empty,
    #[serde(borrow)]
    Items(Vec<Bytes<'a>>),
    #[serde(borrow)]
    Pairs(Vec<(Bytes<'a>, Bytes<'a>)>),
    #[serde(borrow)]
    Value(Bytes<'a>),
    Queue {
        maxsize: u64,
    },
    Semaphore {
        value: u64,
        bounded: bool,
    },
    Barrier {
        parties: u64,
    },
}

/// One operation. The server checks that it fits the object's kind.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op<'a> {
    // Every container.
    Len,
    Clear,

    // Dict and namespace (a namespace is a dict keyed by encoded names).
    Insert {
        #[serde(borrow)]
        key: Bytes<'a>,
        #[serde(borrow)]
        value: Bytes<'a>,
    },
    Get {
        #[serde(borrow)]
        key: Bytes<'a>,
    },
    Remove {
        #[serde(borrow)]
        key: Bytes<'a>,
    },
    ContainsKey {
        #[serde(borrow)]
        key: Bytes<'a>,
    },
    Keys,
    Values,
    Items,
    SetDefault {
        #[serde(borrow)]
        key: Bytes<'a>,
        #[serde(borrow)]
        value: Bytes<'a>,
    },
    Update {
        #[serde(borrow)]
        pairs: Vec<(Bytes<'a>, Bytes<'a>)>,
    },
    PopItem,
    /// Replace the value under `key` if it is still `expected` (`None`: absent).
    CompareAndSet {
        #[serde(borrow)]
        key: Bytes<'a>,
        #[serde(borrow)]
        expected: Option<Bytes<'a>>,
        #[serde(borrow)]
        new: Bytes<'a>,
    },

    // List.
    Push {
        #[serde(borrow)]
        value: Bytes<'a>,
    },
    At {
        index: u64,
    },
    SetAt {
        index: u64,
        #[serde(borrow)]
        value: Bytes<'a>,
    },
    Pop,
    Extend {
        #[serde(borrow)]
        items: Vec<Bytes<'a>>,
    },
    InsertAt {
        index: u64,
        #[serde(borrow)]
        value: Bytes<'a>,
    },
    RemoveAt {
        index: u64,
    },
    IndexOf {
        #[serde(borrow)]
        value: Bytes<'a>,
    },
    Count {
        #[serde(borrow)]
        value: Bytes<'a>,
    },
    /// Remove the first item equal to `value`.
    RemoveValue {
        #[serde(borrow)]
        value: Bytes<'a>,
    },
    Reverse,

    // Queue.
    Put {
        #[serde(borrow)]
        value: Bytes<'a>,
        wait: Wait,
    },
    Take {
        wait: Wait,
    },
    IsFull,
    Close,
    TaskDone,
    JoinQueue {
        wait: Wait,
    },

    // Lock, condition (its lock) and semaphore.
    Acquire {
        wait: Wait,
    },
    Release,
    // Re-entrant lock.
    AcquireOwned {
        owner: Owner,
        wait: Wait,
    },
    ReleaseOwned {
        owner: Owner,
    },
    SemaphoreValue,

    // Event.
    Set,
    Unset,
    IsSet,
    WaitEvent {
        wait: Wait,
    },

    // Condition.
    WaitNotify {
        wait: Wait,
    },
    Notify {
        n: u64,
    },

    // Barrier.
    WaitBarrier {
        wait: Wait,
    },
    Abort,
    Reset,
    BarrierState,

    // Value.
    Load,
    Store {
        #[serde(borrow)]
        value: Bytes<'a>,
    },
    Swap {
        #[serde(borrow)]
        value: Bytes<'a>,
    },
    CompareAndSwap {
        #[serde(borrow)]
        expected: Bytes<'a>,
        #[serde(borrow)]
        new: Bytes<'a>,
    },
}

/// Server to client.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response<'a> {
    /// A blocking operation is still waiting (a heartbeat: the server lives).
    Pending,
    Done,
    Created {
        id: u64,
    },
    Bool(bool),
    Count(u64),
    #[serde(borrow)]
    Value(Option<Bytes<'a>>),
    #[serde(borrow)]
    Values(Vec<Bytes<'a>>),
    #[serde(borrow)]
    Pairs(Vec<(Bytes<'a>, Bytes<'a>)>),
    /// A lock was taken; `holder_died`: its previous holder's connection
    /// dropped while holding it.
    Acquired {
        holder_died: bool,
    },
    /// A compare-and-set lost: the current value.
    #[serde(borrow)]
    Stale(Option<Bytes<'a>>),
    Barrier {
        parties: u64,
        waiting: u64,
        broken: bool,
    },
    Failed(Failure),
}

/// Why an operation did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Failure {
    Empty,
    Full,
    Closed,
    Timeout,
    BrokenBarrier,
    Bounded,
    /// Released a lock this connection does not hold.
    NotHeld,
    /// An argument was out of range or the operation does not fit the object.
    Invalid(String),
}

/// Handshake, server to client, first.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Challenge {
    pub(crate) magic: [u8; 8],
    pub(crate) nonce: [u8; 32],
}

/// Handshake, client to server: its own nonce and its proof of the key.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Answer {
    pub(crate) nonce: [u8; 32],
    pub(crate) mac: [u8; 32],
}

/// Handshake, server to client, last.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Verdict {
    /// The client proved the key; here is the server's proof.
    Welcome {
        mac: [u8; 32],
    },
    Refused,
}

/// Encodes one frame (length prefix and body) into `out`.
pub(crate) fn encode_frame<T: Serialize>(
    out: &mut Vec<u8>,
    message: &T,
    max: usize,
) -> Result<(), FrameError> {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    codec::encode_into(message, out).map_err(FrameError::Codec)?;
    let len = out.len() - 4;
    if len > max {
        return Err(FrameError::Codec(CodecError::new(format!(
            "a manager request or response of {len} bytes exceeds the maximum frame size of \
             {max} bytes; raise it with mp::set_max_frame_size or MP_MAX_FRAME_SIZE (in the \
             manager's process too)"
        ))));
    }
    let len = u32::try_from(len).map_err(|_| {
        FrameError::Codec(CodecError::new(
            "a manager message over 4 GiB cannot be sent",
        ))
    })?;
    out[..4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Writes one frame (one `write` call on the socket).
pub(crate) fn write_frame<T: Serialize>(
    mut stream: &TcpStream,
    message: &T,
    scratch: &mut Vec<u8>,
    max: usize,
) -> Result<(), FrameError> {
    encode_frame(scratch, message, max)?;
    stream.write_all(scratch).map_err(FrameError::Io)
}

/// Reads one frame into `buf`; `Ok(false)` on a clean end of stream before it.
pub(crate) fn read_frame(
    reader: &mut BufReader<TcpStream>,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<bool, FrameError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match reader.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(FrameError::Eof),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    buf.clear();
    // `read_to_end` grows the buffer as bytes arrive: a lying length costs nothing.
    let read = (&mut *reader)
        .take(len as u64)
        .read_to_end(buf)
        .map_err(FrameError::Io)?;
    if read < len {
        return Err(FrameError::Eof);
    }
    Ok(true)
}

/// A frame that could not be read or written.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The stream ended inside a frame.
    Eof,
    /// The announced length is over the bound.
    TooLarge {
        len: usize,
        max: usize,
    },
    /// A message did not encode, or the frame would be too large to send.
    Codec(CodecError),
    Io(io::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Eof => f.write_str("the connection closed in the middle of a message"),
            FrameError::TooLarge { len, max } => write!(
                f,
                "a frame announced {len} bytes, over the limit of {max} bytes"
            ),
            FrameError::Codec(e) => write!(f, "{e}"),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Decodes a whole frame body.
pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    codec::decode_borrowed(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_encode_like_a_byte_string() {
        let data = [1u8, 2, 3];
        let a = codec::encode(&Bytes(&data)).unwrap();
        let b = codec::encode(&ByteBuf(data.to_vec())).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, vec![3, 1, 2, 3]);
        let back: Bytes<'_> = decode(&a).unwrap();
        assert_eq!(back.0, &data);
        let back: ByteBuf = decode(&a).unwrap();
        assert_eq!(back.0, data);
    }

    #[test]
    fn requests_round_trip() {
        let key = codec::encode("k").unwrap();
        let request = Request::Call {
            id: 7,
            op: Op::Insert {
                key: Bytes(&key),
                value: Bytes(&[9]),
            },
        };
        let bytes = codec::encode(&request).unwrap();
        match decode::<Request<'_>>(&bytes).unwrap() {
            Request::Call {
                id: 7,
                op: Op::Insert { key: k, value },
            } => {
                assert_eq!(k.0, &key[..]);
                assert_eq!(value.0, &[9]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pending_is_one_byte() {
        // The client recognises a heartbeat by these bytes without decoding.
        assert_eq!(codec::encode(&Response::Pending).unwrap(), PENDING);
    }

    #[test]
    fn wait_deadlines() {
        let now = Instant::now();
        assert_eq!(Wait::No.deadline(now), Some(now));
        assert_eq!(Wait::Forever.deadline(now), None);
        assert_eq!(
            Wait::from_timeout(Duration::from_millis(5)),
            Wait::Micros(5000)
        );
    }
}
