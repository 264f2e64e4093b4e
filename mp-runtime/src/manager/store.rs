//! The server's objects and the operations on them.
//!
//! Every object sits behind its own mutex, so each operation is atomic; a
//! condition variable beside it wakes blocked operations. Values are the bytes
//! clients encoded: the server compares and stores them, never decodes them.
//! Blocking operations wait through [`Waiter::step`], which also notices a
//! client that went away, so a dead client never keeps an item, a lock or a
//! barrier slot.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::protocol::{Bytes, Failure, Init, Kind, Op, Owner, Response};

/// A connection's id on the server.
pub(crate) type ConnId = u64;

/// One object's state with the condition variable its waiters sleep on.
#[derive(Debug, Default)]
pub(crate) struct Shared<S> {
    state: Mutex<S>,
    changed: Condvar,
}

impl<S> Shared<S> {
    fn new(state: S) -> Arc<Self> {
        Arc::new(Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        // Every critical section leaves the state consistent before anything
        // that could panic, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn wait_timeout<'g>(
        &self,
        guard: MutexGuard<'g, S>,
        timeout: std::time::Duration,
    ) -> MutexGuard<'g, S> {
        match self.changed.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    fn wake(&self) {
        self.changed.notify_all();
    }
}

/// A managed object.
#[derive(Debug, Clone)]
pub(crate) enum Object {
    Dict(Arc<Shared<OrderedMap>>),
    List(Arc<Shared<Vec<Vec<u8>>>>),
    Namespace(Arc<Shared<OrderedMap>>),
    Queue(Arc<Shared<QueueState>>),
    Lock(Arc<Shared<LockState>>),
    RLock(Arc<Shared<RLockState>>),
    Semaphore(Arc<Shared<SemaphoreState>>),
    Event(Arc<Shared<bool>>),
    Condition(Arc<Shared<ConditionState>>),
    Barrier(Arc<Shared<BarrierState>>),
    Value(Arc<Shared<Vec<u8>>>),
}

impl Object {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Object::Dict(_) => Kind::Dict,
            Object::List(_) => Kind::List,
            Object::Namespace(_) => Kind::Namespace,
            Object::Queue(_) => Kind::Queue,
            Object::Lock(_) => Kind::Lock,
            Object::RLock(_) => Kind::RLock,
            Object::Semaphore(_) => Kind::Semaphore,
            Object::Event(_) => Kind::Event,
            Object::Condition(_) => Kind::Condition,
            Object::Barrier(_) => Kind::Barrier,
            Object::Value(_) => Kind::Value,
        }
    }

    fn new(kind: Kind, init: Init<'_>) -> Result<Object, Failure> {
        let invalid = || {
            Failure::Invalid(format!(
                "a {} cannot be created from the initial value given",
                kind.name()
            ))
        };
        Ok(match (kind, init) {
            (Kind::Dict, Init::Empty) => Object::Dict(Shared::new(OrderedMap::default())),
            (Kind::Dict, Init::Pairs(pairs)) => {
                let mut map = OrderedMap::default();
                for (k, v) in pairs {
                    map.insert(k.0, v.0.to_vec());
                }
                Object::Dict(Shared::new(map))
            }
            (Kind::Namespace, Init::Empty) => Object::Namespace(Shared::new(OrderedMap::default())),
            (Kind::List, Init::Empty) => Object::List(Shared::new(Vec::new())),
            (Kind::List, Init::Items(items)) => {
                Object::List(Shared::new(items.iter().map(|b| b.0.to_vec()).collect()))
            }
            (Kind::Queue, Init::Queue { maxsize }) => Object::Queue(Shared::new(QueueState {
                maxsize: usize::try_from(maxsize).unwrap_or(usize::MAX),
                ..QueueState::default()
            })),
            (Kind::Lock, Init::Empty) => Object::Lock(Shared::new(LockState::default())),
            (Kind::RLock, Init::Empty) => Object::RLock(Shared::new(RLockState::default())),
            (Kind::Semaphore, Init::Semaphore { value, bounded }) => {
                Object::Semaphore(Shared::new(SemaphoreState {
                    value,
                    bound: bounded.then_some(value),
                }))
            }
            (Kind::Event, Init::Empty) => Object::Event(Shared::new(false)),
            (Kind::Condition, Init::Empty) => {
                Object::Condition(Shared::new(ConditionState::default()))
            }
            (Kind::Barrier, Init::Barrier { parties }) => {
                if parties == 0 {
                    return Err(Failure::Invalid(
                        "a barrier needs at least one party".into(),
                    ));
                }
                Object::Barrier(Shared::new(BarrierState {
                    parties,
                    count: 0,
                    phase: Phase::Filling,
                }))
            }
            (Kind::Value, Init::Value(v)) => Object::Value(Shared::new(v.0.to_vec())),
            _ => return Err(invalid()),
        })
    }
}

/// Every object of one server, by id and by name.
#[derive(Debug, Default)]
pub(crate) struct Table {
    objects: HashMap<u64, Object>,
    names: HashMap<String, u64>,
    next: u64,
}

impl Table {
    /// Creates an object, or with a name returns the existing one of that name.
    pub(crate) fn create(
        &mut self,
        kind: Kind,
        name: Option<&str>,
        init: Init<'_>,
    ) -> Result<u64, Failure> {
        if let Some(name) = name
            && let Some(&id) = self.names.get(name)
        {
            let existing = self.objects.get(&id).map(Object::kind);
            return match existing {
                Some(k) if k == kind => Ok(id),
                Some(k) => Err(Failure::Invalid(format!(
                    "the manager already holds a {} named `{name}`; a {} cannot have that name",
                    k.name(),
                    kind.name()
                ))),
                None => Err(Failure::Invalid(format!("object `{name}` vanished"))),
            };
        }
        let object = Object::new(kind, init)?;
        self.next += 1;
        let id = self.next;
        self.objects.insert(id, object);
        if let Some(name) = name {
            self.names.insert(name.to_string(), id);
        }
        Ok(id)
    }

    pub(crate) fn get(&self, id: u64) -> Option<Object> {
        self.objects.get(&id).cloned()
    }
}

/// A map of encoded keys to encoded values that remembers insertion order,
/// like a Python dict.
#[derive(Debug, Default)]
pub(crate) struct OrderedMap {
    index: HashMap<Vec<u8>, usize>,
    slots: Vec<Option<(Vec<u8>, Vec<u8>)>>,
    live: usize,
}

impl OrderedMap {
    fn len(&self) -> usize {
        self.live
    }

    fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let slot = self.slots.get(*self.index.get(key)?)?;
        slot.as_ref().map(|(_, v)| &v[..])
    }

    /// Inserts or replaces (keeping the key's place); returns the old value.
    fn insert(&mut self, key: &[u8], value: Vec<u8>) -> Option<Vec<u8>> {
        if let Some(&i) = self.index.get(key)
            && let Some(Some((_, old))) = self.slots.get_mut(i)
        {
            return Some(std::mem::replace(old, value));
        }
        self.index.insert(key.to_vec(), self.slots.len());
        self.slots.push(Some((key.to_vec(), value)));
        self.live += 1;
        None
    }

    fn remove(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let i = self.index.remove(key)?;
        let (_, value) = self.slots.get_mut(i)?.take()?;
        self.live -= 1;
        if self.slots.len() > 32 && self.slots.len() > 2 * self.live {
            self.compact();
        }
        Some(value)
    }

    /// Removes and returns the most recently inserted pair (Python's `popitem`).
    fn pop_last(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        while let Some(slot) = self.slots.pop() {
            if let Some((key, value)) = slot {
                self.index.remove(&key);
                self.live -= 1;
                return Some((key, value));
            }
        }
        None
    }

    fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.live = 0;
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.slots.iter().flatten().map(|(k, v)| (&k[..], &v[..]))
    }

    fn compact(&mut self) {
        self.slots.retain(Option::is_some);
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some((key, _)) = slot
                && let Some(at) = self.index.get_mut(key)
            {
                *at = i;
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct QueueState {
    items: VecDeque<Vec<u8>>,
    /// 0: unbounded.
    maxsize: usize,
    closed: bool,
    /// Items put and not yet marked done (`task_done`).
    unfinished: u64,
}

#[derive(Debug, Default)]
pub(crate) struct LockState {
    holder: Option<ConnId>,
    /// The last holder's connection dropped while it held the lock.
    abandoned: bool,
}

#[derive(Debug, Default)]
pub(crate) struct RLockState {
    owner: Option<Owner>,
    count: u64,
    /// Levels taken through each connection, released if it drops.
    levels: HashMap<ConnId, u64>,
    abandoned: bool,
}

#[derive(Debug, Default)]
pub(crate) struct SemaphoreState {
    value: u64,
    bound: Option<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct ConditionState {
    lock: LockState,
    next_ticket: u64,
    waiting: VecDeque<u64>,
    notified: HashSet<u64>,
}

/// Python's `threading.Barrier` states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Filling,
    Draining,
    Resetting,
    Broken,
}

#[derive(Debug)]
pub(crate) struct BarrierState {
    parties: u64,
    count: u64,
    phase: Phase,
}

/// How a blocking wait ended its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Woken (or a liveness check passed): look again.
    Again,
    /// The deadline passed.
    Deadline,
    /// The client is gone.
    Gone,
}

/// Waits for a change on behalf of one connection.
pub(crate) trait Waiter {
    fn conn(&self) -> ConnId;

    /// Sleeps until the object changes, the deadline passes or it is time to
    /// check the client: never longer than a fraction of a second.
    fn step<'g, S>(
        &mut self,
        shared: &'g Shared<S>,
        guard: MutexGuard<'g, S>,
        deadline: Option<Instant>,
    ) -> (MutexGuard<'g, S>, Step);
}

/// What an operation produced.
#[derive(Debug)]
pub(crate) enum Flow {
    /// Send this response.
    Reply,
    /// The client went away while the operation waited: close the connection.
    Gone,
}

/// Runs `op` on `object`, writing the response through `reply` (while the
/// object's state is still locked, so borrowed values need no copy).
///
/// `held` collects the lock-like objects this connection may hold, for
/// [`release_all`] when it closes.
pub(crate) fn call<W: Waiter>(
    id: u64,
    object: &Object,
    op: Op<'_>,
    waiter: &mut W,
    held: &mut HashMap<u64, Object>,
    reply: &mut dyn FnMut(&Response<'_>),
) -> Flow {
    let mut respond = |r: Response<'_>| {
        reply(&r);
        Flow::Reply
    };
    let now = Instant::now();
    match (object, op) {
        // ---- dict and namespace
        (Object::Dict(s) | Object::Namespace(s), op) => {
            let mut m = s.lock();
            match op {
                Op::Len => respond(Response::Count(m.len() as u64)),
                Op::Clear => {
                    m.clear();
                    respond(Response::Done)
                }
                Op::Insert { key, value } => {
                    let old = m.insert(key.0, value.0.to_vec());
                    respond(Response::Value(old.as_deref().map(Bytes)))
                }
                Op::Get { key } => respond(Response::Value(m.get(key.0).map(Bytes))),
                Op::Remove { key } => {
                    let old = m.remove(key.0);
                    respond(Response::Value(old.as_deref().map(Bytes)))
                }
                Op::ContainsKey { key } => respond(Response::Bool(m.get(key.0).is_some())),
                Op::Keys => respond(Response::Values(m.iter().map(|(k, _)| Bytes(k)).collect())),
                Op::Values => respond(Response::Values(m.iter().map(|(_, v)| Bytes(v)).collect())),
                Op::Items => respond(Response::Pairs(
                    m.iter().map(|(k, v)| (Bytes(k), Bytes(v))).collect(),
                )),
                Op::SetDefault { key, value } => {
                    if m.get(key.0).is_none() {
                        m.insert(key.0, value.0.to_vec());
                    }
                    respond(Response::Value(m.get(key.0).map(Bytes)))
                }
                Op::Update { pairs } => {
                    for (k, v) in pairs {
                        m.insert(k.0, v.0.to_vec());
                    }
                    respond(Response::Done)
                }
                Op::PopItem => {
                    let pair = m.pop_last();
                    respond(Response::Pairs(
                        pair.iter()
                            .map(|(k, v)| (Bytes(&k[..]), Bytes(&v[..])))
                            .collect(),
                    ))
                }
                Op::CompareAndSet { key, expected, new } => {
                    if m.get(key.0) == expected.map(|e| e.0) {
                        m.insert(key.0, new.0.to_vec());
                        respond(Response::Done)
                    } else {
                        respond(Response::Stale(m.get(key.0).map(Bytes)))
                    }
                }
                op => respond(unsupported(object.kind(), &op)),
            }
        }

        // ---- list
        (Object::List(s), op) => {
            let mut l = s.lock();
            let out_of_range = |index: u64, len: usize| {
                Response::Failed(Failure::Invalid(format!(
                    "list index {index} is out of range for a list of length {len}"
                )))
            };
            match op {
                Op::Len => respond(Response::Count(l.len() as u64)),
                Op::Clear => {
                    l.clear();
                    respond(Response::Done)
                }
                Op::Push { value } => {
                    l.push(value.0.to_vec());
                    respond(Response::Done)
                }
                Op::At { index } => respond(Response::Value(
                    usize::try_from(index)
                        .ok()
                        .and_then(|i| l.get(i))
                        .map(|v| Bytes(v)),
                )),
                Op::SetAt { index, value } => {
                    let len = l.len();
                    match usize::try_from(index).ok().and_then(|i| l.get_mut(i)) {
                        Some(slot) => {
                            *slot = value.0.to_vec();
                            respond(Response::Done)
                        }
                        None => respond(out_of_range(index, len)),
                    }
                }
                Op::Pop => {
                    let last = l.pop();
                    respond(Response::Value(last.as_deref().map(Bytes)))
                }
                Op::Extend { items } => {
                    l.extend(items.iter().map(|b| b.0.to_vec()));
                    respond(Response::Done)
                }
                Op::InsertAt { index, value } => match usize::try_from(index) {
                    Ok(i) if i <= l.len() => {
                        l.insert(i, value.0.to_vec());
                        respond(Response::Done)
                    }
                    _ => {
                        let len = l.len();
                        respond(out_of_range(index, len))
                    }
                },
                Op::RemoveAt { index } => match usize::try_from(index) {
                    Ok(i) if i < l.len() => {
                        let removed = l.remove(i);
                        respond(Response::Value(Some(Bytes(&removed))))
                    }
                    _ => {
                        let len = l.len();
                        respond(out_of_range(index, len))
                    }
                },
                Op::IndexOf { value } => {
                    let at = l.iter().position(|v| v[..] == *value.0);
                    respond(match at {
                        Some(i) => Response::Count(i as u64),
                        None => Response::Value(None),
                    })
                }
                Op::Count { value } => respond(Response::Count(
                    l.iter().filter(|v| v[..] == *value.0).count() as u64,
                )),
                Op::RemoveValue { value } => {
                    let at = l.iter().position(|v| v[..] == *value.0);
                    if let Some(i) = at {
                        l.remove(i);
                    }
                    respond(Response::Bool(at.is_some()))
                }
                Op::Reverse => {
                    l.reverse();
                    respond(Response::Done)
                }
                Op::Values => respond(Response::Values(l.iter().map(|v| Bytes(v)).collect())),
                op => respond(unsupported(object.kind(), &op)),
            }
        }

        // ---- queue
        (Object::Queue(s), op) => {
            let mut q = s.lock();
            match op {
                Op::Len => respond(Response::Count(q.items.len() as u64)),
                Op::IsFull => respond(Response::Bool(q.maxsize > 0 && q.items.len() >= q.maxsize)),
                Op::Close => {
                    q.closed = true;
                    s.wake();
                    respond(Response::Done)
                }
                Op::Put { value, wait } => {
                    let deadline = wait.deadline(now);
                    loop {
                        if q.closed {
                            break respond(Response::Failed(Failure::Closed));
                        }
                        if q.maxsize == 0 || q.items.len() < q.maxsize {
                            q.items.push_back(value.0.to_vec());
                            q.unfinished += 1;
                            s.wake();
                            break respond(Response::Done);
                        }
                        let (g, step) = waiter.step(s, q, deadline);
                        q = g;
                        match step {
                            Step::Again => {}
                            Step::Deadline => break respond(Response::Failed(Failure::Full)),
                            Step::Gone => break Flow::Gone,
                        }
                    }
                }
                Op::Take { wait } => {
                    let deadline = wait.deadline(now);
                    loop {
                        if let Some(item) = q.items.pop_front() {
                            s.wake();
                            break respond(Response::Value(Some(Bytes(&item))));
                        }
                        if q.closed {
                            break respond(Response::Failed(Failure::Closed));
                        }
                        let (g, step) = waiter.step(s, q, deadline);
                        q = g;
                        match step {
                            Step::Again => {}
                            Step::Deadline => break respond(Response::Failed(Failure::Empty)),
                            Step::Gone => break Flow::Gone,
                        }
                    }
                }
                Op::TaskDone => {
                    if q.unfinished == 0 {
                        respond(Response::Failed(Failure::Invalid(
                            "task_done() was called more times than items were put".into(),
                        )))
                    } else {
                        q.unfinished -= 1;
                        if q.unfinished == 0 {
                            s.wake();
                        }
                        respond(Response::Done)
                    }
                }
                Op::JoinQueue { wait } => {
                    let deadline = wait.deadline(now);
                    loop {
                        if q.unfinished == 0 {
                            break respond(Response::Done);
                        }
                        let (g, step) = waiter.step(s, q, deadline);
                        q = g;
                        match step {
                            Step::Again => {}
                            Step::Deadline => {
                                break respond(Response::Failed(Failure::Timeout));
                            }
                            Step::Gone => break Flow::Gone,
                        }
                    }
                }
                op => respond(unsupported(object.kind(), &op)),
            }
        }

        // ---- lock
        (Object::Lock(s), Op::Acquire { wait }) => {
            let conn = waiter.conn();
            let deadline = wait.deadline(now);
            let mut l = s.lock();
            loop {
                if l.holder.is_none() {
                    l.holder = Some(conn);
                    let holder_died = std::mem::take(&mut l.abandoned);
                    held.insert(id, object.clone());
                    break respond(Response::Acquired { holder_died });
                }
                let (g, step) = waiter.step(s, l, deadline);
                l = g;
                match step {
                    Step::Again => {}
                    Step::Deadline => break respond(Response::Failed(Failure::Timeout)),
                    Step::Gone => break Flow::Gone,
                }
            }
        }
        (Object::Lock(s), Op::Release) => {
            let mut l = s.lock();
            if l.holder == Some(waiter.conn()) {
                l.holder = None;
                s.wake();
                respond(Response::Done)
            } else {
                respond(Response::Failed(Failure::NotHeld))
            }
        }

        // ---- re-entrant lock
        (Object::RLock(s), Op::AcquireOwned { owner, wait }) => {
            let conn = waiter.conn();
            let deadline = wait.deadline(now);
            let mut l = s.lock();
            loop {
                let holder_died = match l.owner {
                    None => {
                        l.owner = Some(owner);
                        std::mem::take(&mut l.abandoned)
                    }
                    Some(o) if o == owner => false,
                    Some(_) => {
                        let (g, step) = waiter.step(s, l, deadline);
                        l = g;
                        match step {
                            Step::Again => continue,
                            Step::Deadline => break respond(Response::Failed(Failure::Timeout)),
                            Step::Gone => break Flow::Gone,
                        }
                    }
                };
                l.count += 1;
                *l.levels.entry(conn).or_insert(0) += 1;
                held.insert(id, object.clone());
                break respond(Response::Acquired { holder_died });
            }
        }
        (Object::RLock(s), Op::ReleaseOwned { owner }) => {
            let conn = waiter.conn();
            let mut l = s.lock();
            let levels = l.levels.get(&conn).copied().unwrap_or(0);
            if l.owner != Some(owner) || levels == 0 {
                return respond(Response::Failed(Failure::NotHeld));
            }
            if levels == 1 {
                l.levels.remove(&conn);
            } else {
                l.levels.insert(conn, levels - 1);
            }
            l.count -= 1;
            if l.count == 0 {
                l.owner = None;
                s.wake();
            }
            respond(Response::Done)
        }

        // ---- semaphore
        (Object::Semaphore(s), op) => {
            let mut sem = s.lock();
            match op {
                Op::Acquire { wait } => {
                    let deadline = wait.deadline(now);
                    loop {
                        if sem.value > 0 {
                            sem.value -= 1;
                            break respond(Response::Done);
                        }
                        let (g, step) = waiter.step(s, sem, deadline);
                        sem = g;
                        match step {
                            Step::Again => {}
                            Step::Deadline => {
                                break respond(Response::Failed(Failure::Timeout));
                            }
                            Step::Gone => break Flow::Gone,
                        }
                    }
                }
                Op::Release => {
                    if sem.bound.is_some_and(|b| sem.value >= b) {
                        respond(Response::Failed(Failure::Bounded))
                    } else {
                        sem.value += 1;
                        s.wake();
                        respond(Response::Done)
                    }
                }
                Op::SemaphoreValue => respond(Response::Count(sem.value)),
                op => respond(unsupported(object.kind(), &op)),
            }
        }

        // ---- event
        (Object::Event(s), op) => {
            let mut flag = s.lock();
            match op {
                Op::Set => {
                    *flag = true;
                    s.wake();
                    respond(Response::Done)
                }
                Op::Unset => {
                    *flag = false;
                    respond(Response::Done)
                }
                Op::IsSet => respond(Response::Bool(*flag)),
                Op::WaitEvent { wait } => {
                    let deadline = wait.deadline(now);
                    loop {
                        if *flag {
                            break respond(Response::Bool(true));
                        }
                        let (g, step) = waiter.step(s, flag, deadline);
                        flag = g;
                        match step {
                            Step::Again => {}
                            Step::Deadline => break respond(Response::Bool(false)),
                            Step::Gone => break Flow::Gone,
                        }
                    }
                }
                op => respond(unsupported(object.kind(), &op)),
            }
        }

        // ---- condition
        (Object::Condition(s), op) => {
            let conn = waiter.conn();
            let mut c = s.lock();
            match op {
                Op::Acquire { wait } => {
                    let deadline = wait.deadline(now);
                    loop {
                        if c.lock.holder.is_none() {
                            c.lock.holder = Some(conn);
                            let holder_died = std::mem::take(&mut c.lock.abandoned);
                            held.insert(id, object.clone());
                            break respond(Response::Acquired { holder_died });
                        }
                        let (g, step) = waiter.step(s, c, deadline);
                        c = g;
                        match step {
                            Step::Again => {}
                            Step::Deadline => {
                                break respond(Response::Failed(Failure::Timeout));
                            }
                            Step::Gone => break Flow::Gone,
                        }
                    }
                }
                Op::Release => {
                    if c.lock.holder == Some(conn) {
                        c.lock.holder = None;
                        s.wake();
                        respond(Response::Done)
                    } else {
                        respond(Response::Failed(Failure::NotHeld))
                    }
                }
                Op::WaitNotify { wait } => {
                    if c.lock.holder != Some(conn) {
                        return respond(Response::Failed(Failure::NotHeld));
                    }
                    let deadline = wait.deadline(now);
                    let ticket = c.next_ticket;
                    c.next_ticket += 1;
                    c.waiting.push_back(ticket);
                    c.lock.holder = None;
                    s.wake();
                    let notified = loop {
                        if c.notified.remove(&ticket) {
                            break true;
                        }
                        let (g, step) = waiter.step(s, c, deadline);
                        c = g;
                        match step {
                            Step::Again => {}
                            Step::Deadline => {
                                c.waiting.retain(|&t| t != ticket);
                                break c.notified.remove(&ticket);
                            }
                            Step::Gone => {
                                c.waiting.retain(|&t| t != ticket);
                                // A notification meant for us goes to the next waiter.
                                if c.notified.remove(&ticket)
                                    && let Some(next) = c.waiting.pop_front()
                                {
                                    c.notified.insert(next);
                                    s.wake();
                                }
                                return Flow::Gone;
                            }
                        }
                    };
                    // Take the lock back, however long that takes.
                    loop {
                        if c.lock.holder.is_none() {
                            c.lock.holder = Some(conn);
                            break respond(Response::Bool(notified));
                        }
                        let (g, step) = waiter.step(s, c, None);
                        c = g;
                        if step == Step::Gone {
                            break Flow::Gone;
                        }
                    }
                }
                Op::Notify { n } => {
                    for _ in 0..n {
                        match c.waiting.pop_front() {
                            Some(ticket) => {
                                c.notified.insert(ticket);
                            }
                            None => break,
                        }
                    }
                    s.wake();
                    respond(Response::Done)
                }
                op => respond(unsupported(object.kind(), &op)),
            }
        }

        // ---- barrier (Python's threading.Barrier, state for state)
        (Object::Barrier(s), op) => {
            let mut b = s.lock();
            match op {
                Op::WaitBarrier { wait } => {
                    let deadline = wait.deadline(now);
                    // Wait for a previous round to drain or a reset to finish.
                    loop {
                        match b.phase {
                            Phase::Filling => break,
                            Phase::Broken => {
                                return respond(Response::Failed(Failure::BrokenBarrier));
                            }
                            Phase::Draining | Phase::Resetting => {
                                let (g, step) = waiter.step(s, b, None);
                                b = g;
                                if step == Step::Gone {
                                    return Flow::Gone;
                                }
                            }
                        }
                    }
                    let index = b.count;
                    b.count += 1;
                    let outcome = if b.count == b.parties {
                        b.phase = Phase::Draining;
                        s.wake();
                        Ok(index)
                    } else {
                        loop {
                            if b.phase != Phase::Filling {
                                break if b.phase == Phase::Draining {
                                    Ok(index)
                                } else {
                                    Err(Some(Failure::BrokenBarrier))
                                };
                            }
                            let (g, step) = waiter.step(s, b, deadline);
                            b = g;
                            match step {
                                Step::Again => {}
                                Step::Deadline => {
                                    b.phase = Phase::Broken;
                                    s.wake();
                                    break Err(Some(Failure::Timeout));
                                }
                                Step::Gone => {
                                    // The others would wait for a party that is gone.
                                    b.phase = Phase::Broken;
                                    s.wake();
                                    break Err(None);
                                }
                            }
                        }
                    };
                    b.count -= 1;
                    if b.count == 0 && matches!(b.phase, Phase::Draining | Phase::Resetting) {
                        b.phase = Phase::Filling;
                        s.wake();
                    }
                    match outcome {
                        Ok(index) => respond(Response::Count(index)),
                        Err(Some(failure)) => respond(Response::Failed(failure)),
                        Err(None) => Flow::Gone,
                    }
                }
                Op::Abort => {
                    b.phase = Phase::Broken;
                    s.wake();
                    respond(Response::Done)
                }
                Op::Reset => {
                    if b.count > 0 {
                        if matches!(b.phase, Phase::Filling | Phase::Broken) {
                            b.phase = Phase::Resetting;
                        }
                    } else {
                        b.phase = Phase::Filling;
                    }
                    s.wake();
                    respond(Response::Done)
                }
                Op::BarrierState => respond(Response::Barrier {
                    parties: b.parties,
                    waiting: if b.phase == Phase::Filling {
                        b.count
                    } else {
                        0
                    },
                    broken: b.phase == Phase::Broken,
                }),
                op => respond(unsupported(object.kind(), &op)),
            }
        }

        // ---- value
        (Object::Value(s), op) => {
            let mut v = s.lock();
            match op {
                Op::Load => respond(Response::Value(Some(Bytes(&v)))),
                Op::Store { value } => {
                    *v = value.0.to_vec();
                    respond(Response::Done)
                }
                Op::Swap { value } => {
                    let old = std::mem::replace(&mut *v, value.0.to_vec());
                    respond(Response::Value(Some(Bytes(&old))))
                }
                Op::CompareAndSwap { expected, new } => {
                    if v[..] == *expected.0 {
                        *v = new.0.to_vec();
                        respond(Response::Done)
                    } else {
                        respond(Response::Stale(Some(Bytes(&v))))
                    }
                }
                op => respond(unsupported(object.kind(), &op)),
            }
        }

        (object, op) => respond(unsupported(object.kind(), &op)),
    }
}

fn unsupported(kind: Kind, op: &Op<'_>) -> Response<'static> {
    let op = format!("{op:?}");
    let op = op.split([' ', '{', '(']).next().unwrap_or("?").to_string();
    Response::Failed(Failure::Invalid(format!(
        "a managed {} has no operation `{op}` (the proxy and the object disagree on the kind)",
        kind.name()
    )))
}

/// Releases every lock a closing connection still holds; their next holder
/// learns it through `holder_died`.
pub(crate) fn release_all(conn: ConnId, held: HashMap<u64, Object>) {
    for object in held.into_values() {
        match object {
            Object::Lock(s) => {
                let mut l = s.lock();
                if l.holder == Some(conn) {
                    l.holder = None;
                    l.abandoned = true;
                    s.wake();
                }
            }
            Object::RLock(s) => {
                let mut l = s.lock();
                if let Some(levels) = l.levels.remove(&conn) {
                    l.count = l.count.saturating_sub(levels);
                    if l.count == 0 {
                        l.owner = None;
                        l.abandoned = true;
                        s.wake();
                    }
                }
            }
            Object::Condition(s) => {
                let mut c = s.lock();
                if c.lock.holder == Some(conn) {
                    c.lock.holder = None;
                    c.lock.abandoned = true;
                    s.wake();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_map_keeps_insertion_order_and_compacts() {
        let mut m = OrderedMap::default();
        for i in 0u8..100 {
            m.insert(&[i], vec![i]);
        }
        for i in 0u8..90 {
            assert_eq!(m.remove(&[i]), Some(vec![i]));
        }
        assert_eq!(m.len(), 10);
        assert!(m.slots.len() < 100, "compacted");
        let keys: Vec<u8> = m.iter().map(|(k, _)| k[0]).collect();
        assert_eq!(keys, (90..100).collect::<Vec<u8>>());
        assert_eq!(m.insert(&[95], vec![0]), Some(vec![95]));
        assert_eq!(m.get(&[95]), Some(&[0u8][..]));
        assert_eq!(m.pop_last(), Some((vec![99], vec![99])));
        assert_eq!(m.len(), 9);
        m.insert(&[1], vec![1]);
        assert_eq!(m.iter().last().map(|(k, _)| k[0]), Some(1));
        m.clear();
        assert_eq!(m.len(), 0);
        assert_eq!(m.pop_last(), None);
    }

    #[test]
    fn named_objects_are_shared_and_kinds_checked() {
        let mut t = Table::default();
        let a = t.create(Kind::Dict, Some("jobs"), Init::Empty).unwrap();
        let b = t.create(Kind::Dict, Some("jobs"), Init::Empty).unwrap();
        assert_eq!(a, b);
        let c = t.create(Kind::Dict, None, Init::Empty).unwrap();
        assert_ne!(a, c);
        assert!(matches!(
            t.create(Kind::List, Some("jobs"), Init::Empty),
            Err(Failure::Invalid(_))
        ));
        assert!(matches!(
            t.create(Kind::Barrier, None, Init::Barrier { parties: 0 }),
            Err(Failure::Invalid(_))
        ));
    }
}
