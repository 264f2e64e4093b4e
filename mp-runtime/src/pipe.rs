//! `pipe()`: a duplex connection between two processes, like `multiprocessing.Pipe`.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::de::{DeserializeOwned, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::sys::{self, OsHandle, Stream};
use crate::transfer;
use crate::wire::{self, FrameReader, RecvHalf};

/// Creates a connected pair of duplex [`Connection`]s: what one end sends, the
/// other receives, in both directions.
///
/// ```
/// let (a, b) = mp::pipe::<String>()?;
/// a.send(&"ping".to_string())?;
/// assert_eq!(b.recv()?, "ping");
/// b.send(&"pong".to_string())?;
/// assert_eq!(a.recv()?, "pong");
/// # Ok::<(), mp::Error>(())
/// ```
pub fn pipe<T>() -> Result<(Connection<T>, Connection<T>)> {
    let (a, b) = sys::stream_pair().map_err(|e| Error::io("creating a pipe", e))?;
    Ok((Connection::from_stream(a)?, Connection::from_stream(b)?))
}

/// One end of a [`pipe`]. Clone it, or pass it to a job (as an argument, also
/// inside tuples, `Vec`s and your own structs): every copy is the same end.
///
/// Messages are whole: a `recv` returns exactly one `send`. When every copy of
/// the other end is gone (dropped, or its process exited), `recv` returns
/// `Err(Disconnected)` instead of waiting forever. Keep only the copies you use:
/// an unused copy of the other end held by this process keeps it open.
///
/// One reader and one writer per end at a time (as in Python); within one
/// process, concurrent calls are serialized.
///
/// On Windows a message that carries handles (a pipe end, and later queues or
/// shared memory) must be received while the process that sent it still runs:
/// the receiver takes the handles out of the sender. Received after the sender
/// exited, it is a `Codec` error that says so. (On Unix the kernel holds them in
/// flight.)
pub struct Connection<T> {
    inner: Arc<Inner>,
    _message: PhantomData<fn(T) -> T>,
}

struct Inner {
    // The stream is shared by the reading and writing halves, each behind its
    // own lock so a blocked `recv` never holds up a `send`.
    reader: Mutex<FrameReader<Polling>>,
    writer: Mutex<(Stream, Vec<u8>)>,
}

impl<T> std::fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("message", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T> Clone for Connection<T> {
    fn clone(&self) -> Self {
        Connection {
            inner: Arc::clone(&self.inner),
            _message: PhantomData,
        }
    }
}

/// A pipe end's reading side. On Unix a read polls briefly before it blocks:
/// the two ends of a pipe are usually two processes talking back and forth,
/// and an answer that comes within the poll arrives without a kernel wake-up
/// (a ping-pong went from 37 to 5 µs here). Worker channels do not poll: a
/// pool's threads and workers would take CPU from the jobs.
#[derive(Debug)]
struct Polling(Stream);

impl RecvHalf for Polling {
    fn recv(&mut self, buf: &mut [u8], handles: &mut VecDeque<OsHandle>) -> std::io::Result<usize> {
        #[cfg(unix)]
        return sys::recv_with_handles_polling(&self.0, buf, handles, sys::RECV_SPIN);
        #[cfg(windows)]
        return RecvHalf::recv(&mut self.0, buf, handles);
    }

    #[cfg(windows)]
    fn import(&mut self, records: &[u8]) -> std::io::Result<Vec<OsHandle>> {
        RecvHalf::import(&mut self.0, records)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn map_io(context: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::io(context, e)
}

impl<T> Connection<T> {
    fn from_stream(stream: Stream) -> Result<Self> {
        let writer = stream
            .try_clone()
            .map_err(map_io("duplicating a pipe end"))?;
        // Reads ahead (one system call per small message); see `Serialize`.
        let reader = FrameReader::new(Polling(stream));
        Ok(Connection {
            inner: Arc::new(Inner {
                reader: Mutex::new(reader),
                writer: Mutex::new((writer, Vec::new())),
            }),
            _message: PhantomData,
        })
    }

    /// Sends raw bytes as one message; the peer reads them with [`recv_bytes`](Self::recv_bytes).
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        let mut writer = lock(&self.inner.writer);
        let (stream, scratch) = &mut *writer;
        wire::write_frame(stream, &(), bytes, &[], scratch)
    }

    /// Receives one message as raw bytes.
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        let mut reader = lock(&self.inner.reader);
        match reader.read_frame(wire::max_frame_size())? {
            Some(frame) => Ok(frame.into_payload()),
            None => Err(Error::Disconnected),
        }
    }

    /// True if a message can be received without waiting, waiting up to `timeout`
    /// for one (`None`: do not wait). A closed peer also counts as ready (the
    /// next `recv` reports it).
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        let reader = lock(&self.inner.reader);
        if reader.has_buffered() {
            return Ok(true);
        }
        sys::poll_readable(&reader.get_ref().0, timeout.unwrap_or(Duration::ZERO))
            .map_err(map_io("polling a pipe"))
    }
}

impl<T: Serialize> Connection<T> {
    /// Sends one message. Handles inside it (queues, pipes, shared memory) travel too.
    pub fn send(&self, message: &T) -> Result<()> {
        let encoded = transfer::encode(message)?;
        let handles: Vec<_> = encoded.handles.iter().map(sys::borrow_handle).collect();
        let mut writer = lock(&self.inner.writer);
        let (stream, scratch) = &mut *writer;
        wire::write_frame(stream, &(), &encoded.bytes, &handles, scratch)
    }
}

impl<T: DeserializeOwned> Connection<T> {
    /// Receives one message, waiting for it; `Err(Disconnected)` when the peer is gone.
    pub fn recv(&self) -> Result<T> {
        let mut frame = {
            let mut reader = lock(&self.inner.reader);
            match reader.read_frame(wire::max_frame_size())? {
                Some(frame) => frame,
                None => return Err(Error::Disconnected),
            }
        };
        let handles = frame.take_handles();
        Ok(transfer::decode(frame.payload(), handles)?)
    }

    /// Receives one message, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T> {
        if self.poll(Some(timeout))? {
            self.recv()
        } else {
            Err(Error::Timeout { after: timeout })
        }
    }
}

impl<T> Serialize for Connection<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        // Bytes read ahead here would be lost to the receiving process. (If a
        // recv of this process holds the reader, it reads concurrently with the
        // receiver: unsupported, as documented, and not checked.)
        if let Ok(reader) = self.inner.reader.try_lock()
            && reader.has_buffered()
        {
            return Err(serde::ser::Error::custom(transfer::remember(
                "this pipe end holds received messages not yet taken with recv; take them \
                 before passing the end to another process"
                    .to_string(),
            )));
        }
        // The writing half is the same stream, and its lock is never held for long.
        // The stream's handles (one socket on Unix, two pipes on Windows) are a
        // tuple of indices: for one handle, postcard writes the bare index.
        let writer = lock(&self.inner.writer);
        let mut tuple = serializer.serialize_tuple(sys::STREAM_HANDLES)?;
        for handle in sys::stream_handles(&writer.0) {
            let index = transfer::attach(handle).map_err(serde::ser::Error::custom)?;
            tuple.serialize_element(&index)?;
        }
        tuple.end()
    }
}

/// Reads the tuple of handle indices a `Connection` serializes as.
struct Indices;

impl<'de> Visitor<'de> for Indices {
    type Value = Vec<u32>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} handle indices", sys::STREAM_HANDLES)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Vec<u32>, A::Error> {
        let mut indices = Vec::with_capacity(sys::STREAM_HANDLES);
        for i in 0..sys::STREAM_HANDLES {
            let index = seq
                .next_element()?
                .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
            indices.push(index);
        }
        Ok(indices)
    }
}

impl<'de, T> Deserialize<'de> for Connection<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let indices = deserializer.deserialize_tuple(sys::STREAM_HANDLES, Indices)?;
        let handles = indices
            .into_iter()
            .map(transfer::detach)
            .collect::<std::result::Result<Vec<_>, String>>()
            .map_err(serde::de::Error::custom)?;
        let handles = <[_; sys::STREAM_HANDLES]>::try_from(handles).map_err(|_| {
            serde::de::Error::custom(transfer::remember(
                "a pipe end arrived with the wrong number of handles".to_string(),
            ))
        })?;
        Connection::from_stream(sys::stream_from_handles(handles))
            .map_err(|e| serde::de::Error::custom(transfer::remember(e.to_string())))
    }
}
