//! The parent's side of one worker: start it, shake hands, send requests, read replies.

use std::sync::Arc;
use std::time::Duration;

use crate::children::ChildHandle;
use crate::error::{Error, Result};
use crate::sys::{self, ChannelRead, ChannelWrite, OsHandle, borrow_handle};
use crate::wire::{self, Frame, FrameReader, Hello, HelloAck, Mismatch};

/// How long a new worker may take to answer the handshake. Generous: a loaded
/// CI machine or an emulated platform can take seconds to start a process.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// A started, handshaken worker.
#[derive(Debug)]
pub(crate) struct WorkerConn {
    pub(crate) child: Arc<ChildHandle>,
    pub(crate) reader: Reader,
    pub(crate) writer: Writer,
}

/// Reads replies from one worker.
#[derive(Debug)]
pub(crate) struct Reader {
    input: FrameReader<ChannelRead>,
    max_frame: usize,
}

/// Sends requests to one worker.
#[derive(Debug)]
pub(crate) struct Writer {
    output: ChannelWrite,
    scratch: Vec<u8>,
}

impl Reader {
    /// The next reply; `Ok(None)` when the worker closed its end (exited).
    pub(crate) fn next(&mut self) -> Result<Option<Frame>> {
        self.input.read_frame(self.max_frame)
    }
}

impl Writer {
    pub(crate) fn send<H: serde::Serialize>(&mut self, header: &H, payload: &[u8]) -> Result<()> {
        wire::write_frame(&mut self.output, header, payload, &[], &mut self.scratch)
    }

    /// Sends a frame whose payload carries OS handles.
    pub(crate) fn send_with_handles<H: serde::Serialize>(
        &mut self,
        header: &H,
        payload: &[u8],
        handles: &[OsHandle],
    ) -> Result<()> {
        let borrowed: Vec<_> = handles.iter().map(borrow_handle).collect();
        wire::write_frame(
            &mut self.output,
            header,
            payload,
            &borrowed,
            &mut self.scratch,
        )
    }
}

/// Starts a worker process named `name` and completes the handshake.
pub(crate) fn launch(name: &str, daemon: bool) -> Result<WorkerConn> {
    let (pid, channel) = sys::spawn_worker().map_err(|e| Error::WorkerStart {
        message: format!("spawning the current executable failed: {e}"),
    })?;
    let child = ChildHandle::register(pid, name.to_string(), daemon);
    let mut reader = Reader {
        input: FrameReader::new(channel.read),
        max_frame: 64 * 1024,
    };
    let mut writer = Writer {
        output: channel.write,
        scratch: Vec::with_capacity(256),
    };
    match handshake(&child, &mut reader, &mut writer, name) {
        Ok(()) => {
            reader.max_frame = wire::max_frame_size();
            Ok(WorkerConn {
                child,
                reader,
                writer,
            })
        }
        Err(e) => {
            let _ = child.signal(sys::Signal::Kill);
            child.reap_with_grace(Duration::from_secs(1));
            Err(e)
        }
    }
}

fn handshake(
    child: &ChildHandle,
    reader: &mut Reader,
    writer: &mut Writer,
    name: &str,
) -> Result<()> {
    let pid = child.pid();
    let parent_name = crate::process::current_process().name().to_string();
    let hello = Hello::ours(name, &parent_name);
    let start_error = |message: String| Error::WorkerStart { message };
    // A worker that already died cannot read; its exit is reported below.
    let _ = writer.send(&hello, &[]);
    let _ = sys::set_read_timeout(reader.input.get_ref(), Some(HANDSHAKE_TIMEOUT));
    let frame = reader.next();
    let _ = sys::set_read_timeout(reader.input.get_ref(), None);
    let frame = match frame {
        Ok(Some(frame)) => frame,
        Ok(None) | Err(Error::Disconnected) => {
            let exit = child.reap_with_grace(Duration::from_secs(1));
            return Err(start_error(format!(
                "worker process {pid} {exit} before its handshake; the program may exit or \
                 abort during start-up (code that runs before `main`), or the executable \
                 is not the one that started"
            )));
        }
        Err(Error::Timeout { .. }) => {
            return Err(start_error(format!(
                "worker process {pid} did not answer within {HANDSHAKE_TIMEOUT:?}; is the \
                 binary built with mp (its start-up hook must run before `main`)?"
            )));
        }
        Err(e) => return Err(e),
    };
    let ack: HelloAck = frame.header()?;
    match ack.mismatch() {
        None => {}
        Some(Mismatch::Protocol { theirs }) => {
            return Err(start_error(format!(
                "worker process {pid} speaks protocol {theirs} but this process speaks {}; \
                 both must come from the same build",
                wire::PROTOCOL_VERSION
            )));
        }
        Some(Mismatch::Registry {
            theirs,
            their_jobs,
            ours,
            our_jobs,
        }) => {
            return Err(start_error(format!(
                "worker process {pid} was built from different code (job registry fingerprint \
                 {theirs:016x}, {their_jobs} jobs; ours {ours:016x}, {our_jobs} jobs): the \
                 executable changed on disk while the program ran; restart the program"
            )));
        }
    }
    Ok(())
}
