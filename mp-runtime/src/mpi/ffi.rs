//! The few raw MPI and C calls the safe `mpi` crate does not offer in the
//! shape rank 0 needs: a nonblocking send whose buffer the caller owns until it
//! completes, tested without blocking, and the C `atexit`.

use std::ffi::c_int;

use ::mpi::ffi;

unsafe extern "C" {
    fn atexit(hook: extern "C" fn()) -> c_int;
}

/// Runs `hook` when the process exits (`exit`, or `main` returning).
pub(super) fn at_exit(hook: extern "C" fn()) {
    // SAFETY: registers a plain extern "C" fn with no captured state.
    unsafe {
        atexit(hook);
    }
}

/// A nonblocking send in progress; it owns its buffer until it completes.
#[derive(Debug)]
pub(super) struct Send {
    request: ffi::MPI_Request,
    /// Read by MPI until the request completes; never touched meanwhile.
    buffer: Vec<u8>,
}

// SAFETY: an MPI request handle is an opaque value that any thread may pass to
// MPI (the library is initialized with at least MPI_THREAD_SERIALIZED, and only
// the thread holding the hub's MPI lock uses these); the buffer is an owned Vec.
unsafe impl std::marker::Send for Send {}

impl Send {
    /// Starts sending `buffer` (at most `i32::MAX` bytes) to `rank` with `tag`
    /// on the world communicator.
    pub(super) fn start(buffer: Vec<u8>, rank: usize, tag: i32) -> Send {
        let count = c_int::try_from(buffer.len()).unwrap_or(c_int::MAX);
        let rank = c_int::try_from(rank).unwrap_or(c_int::MAX);
        // SAFETY: a null request handle, overwritten by MPI_Isend below.
        let mut request = unsafe { ffi::RSMPI_REQUEST_NULL };
        // SAFETY: `buffer` is owned by the returned value and neither moved out,
        // resized nor freed until `test` reports completion (`Drop` leaks it if
        // the send never completes); the datatype and communicator are MPI's
        // predefined ones; `request` is a valid place for the handle.
        unsafe {
            ffi::MPI_Isend(
                buffer.as_ptr().cast(),
                count,
                ffi::RSMPI_UINT8_T,
                rank,
                tag,
                ffi::RSMPI_COMM_WORLD,
                &mut request,
            );
        }
        Send { request, buffer }
    }

    /// True once the send has completed (the buffer is then free).
    pub(super) fn test(&mut self) -> bool {
        let mut done: c_int = 0;
        // SAFETY: `request` came from MPI_Isend and is not yet completed (a
        // completed one is set to MPI_REQUEST_NULL by MPI_Test, which is also
        // valid to test); the status is ignored.
        unsafe {
            ffi::MPI_Test(&mut self.request, &mut done, ffi::RSMPI_STATUS_IGNORE);
        }
        done != 0
    }
}

impl Drop for Send {
    fn drop(&mut self) {
        if !self.test() {
            // A send to a rank that died never completes: MPI may still read the
            // buffer, so it is leaked, and the request freed (MPI completes or
            // discards it on its own).
            std::mem::forget(std::mem::take(&mut self.buffer));
            // SAFETY: a valid, active request handle; freeing an active send
            // request is allowed and lets MPI release it when it ends.
            unsafe {
                ffi::MPI_Request_free(&mut self.request);
            }
        }
    }
}
