//! `imap` / `imap_unordered`: lazy iterators with a bounded number of chunks in flight.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, mpsc};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Pool;
use super::result::StreamSink;
use crate::error::{Error, Result};
use crate::registry::JobEntry;

/// The lazy result iterator of [`Pool::imap`] and [`Pool::imap_unordered`].
///
/// Input is pulled only as results are consumed, with at most a few chunks per
/// worker in flight, so an endless input works and memory stays bounded. A chunk
/// whose job panicked yields one `Err` in place of its items.
pub struct Imap<'p, R, I> {
    pool: &'p Pool,
    job: Option<&'static JobEntry>,
    error: Option<Error>,
    input: Option<I>,
    chunksize: usize,
    ordered: bool,
    limit: usize,
    submitted: usize,
    next_to_yield: usize,
    in_flight: usize,
    early: BTreeMap<usize, Result<Vec<R>>>,
    ready: VecDeque<Result<R>>,
    sink: Arc<StreamSink<R>>,
    rx: mpsc::Receiver<(usize, Result<Vec<R>>)>,
}

impl<R, I> std::fmt::Debug for Imap<'_, R, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imap")
            .field("job", &self.job.map(JobEntry::name))
            .field("chunksize", &self.chunksize)
            .field("ordered", &self.ordered)
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

impl<'p, R, A, I> Imap<'p, R, I>
where
    R: DeserializeOwned + Send + 'static,
    A: Serialize,
    I: Iterator<Item = A>,
{
    pub(crate) fn new(
        pool: &'p Pool,
        job: Result<&'static JobEntry>,
        input: I,
        chunksize: usize,
        ordered: bool,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        let (job, error) = match job {
            Ok(job) => (Some(job), None),
            Err(e) => (None, Some(e)),
        };
        Imap {
            pool,
            job,
            error,
            input: Some(input),
            chunksize,
            ordered,
            limit: pool.processes().max(1) * 4,
            submitted: 0,
            next_to_yield: 0,
            in_flight: 0,
            early: BTreeMap::new(),
            ready: VecDeque::new(),
            sink: Arc::new(StreamSink::new(tx)),
            rx,
        }
    }

    /// Submits chunks until `limit` are in flight or the input ends.
    fn top_up(&mut self) {
        let Some(job) = self.job else { return };
        while self.in_flight < self.limit {
            let Some(input) = self.input.as_mut() else {
                return;
            };
            let chunk: Vec<A> = input.by_ref().take(self.chunksize).collect();
            if chunk.is_empty() {
                self.input = None;
                return;
            }
            let index = self.submitted;
            let sink: Arc<dyn super::result::Sink> = self.sink.clone();
            match self
                .pool
                .submit_chunk(job, &super::OneTuples(&chunk), index, sink)
            {
                Ok(()) => {
                    self.submitted += 1;
                    self.in_flight += 1;
                }
                Err(e) => {
                    // Report the failure in this chunk's place and stop reading input.
                    self.input = None;
                    self.submitted += 1;
                    self.in_flight += 1;
                    self.early_or_ready(index, Err(e));
                    return;
                }
            }
        }
    }

    fn early_or_ready(&mut self, index: usize, result: Result<Vec<R>>) {
        if self.ordered {
            self.early.insert(index, result);
        } else {
            self.in_flight -= 1;
            self.push_ready(result);
        }
    }

    fn push_ready(&mut self, result: Result<Vec<R>>) {
        match result {
            Ok(values) => self.ready.extend(values.into_iter().map(Ok)),
            Err(e) => self.ready.push_back(Err(e)),
        }
    }
}

impl<R, A, I> Iterator for Imap<'_, R, I>
where
    R: DeserializeOwned + Send + 'static,
    A: Serialize,
    I: Iterator<Item = A>,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            self.top_up();
            if let Some(result) = self
                .ordered
                .then(|| self.early.remove(&self.next_to_yield))
                .flatten()
            {
                self.next_to_yield += 1;
                self.in_flight -= 1;
                self.push_ready(result);
                continue;
            }
            if self.in_flight == 0 {
                return None;
            }
            match self.rx.recv() {
                Ok((index, result)) => self.early_or_ready(index, result),
                // Every sender is gone with results outstanding: cannot happen
                // while we hold `sink`, but never hang if it does.
                Err(_) => return Some(Err(Error::Disconnected)),
            }
        }
    }
}
