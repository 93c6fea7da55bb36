//! Auto-pipelining's queues: retry-safe single commands issued at the same moment on one
//! thread wait here to be sent together as one `/pipeline` request (as the official JS SDK
//! does). This file only keeps the queues and builds the pipeline body; the client sends each
//! batch it takes from here (`UpstashClient::command_coalesced`), so the dependency runs one
//! way, client to batch.
//!
//! Each caller still waits for exactly one round trip, and each command is still one command
//! (Upstash bills per command), but under concurrency many requests share one HTTP exchange,
//! which is most of the client's CPU cost. Batches are per thread: actix-web's workers are
//! single-threaded runtimes, so a batch, its flush task and its connection stay on one thread.

use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use thread_local::ThreadLocal;
use tokio::sync::oneshot;

use super::{error::UpstashError, reply::Reply};
use crate::sync::LockIgnoringPoison;

/// Most commands in one pipeline request; more go in further requests, in parallel.
pub const MAX_BATCH: usize = 128;

/// Where a queued command's reply goes.
pub(super) type Waiter = oneshot::Sender<Result<Reply, UpstashError>>;

/// One queued command: its serialized JSON array, its caller, and with traces on the
/// caller's trace context (the shared request's span links to it).
pub(super) type Queued = (Bytes, Waiter, Option<opentelemetry::Context>);

/// Where a queued command's reply arrives.
pub(super) type Pending = oneshot::Receiver<Result<Reply, UpstashError>>;

/// The commands queued on one thread, waiting for their flush.
#[derive(Default)]
pub(super) struct Batch {
    commands: Vec<Queued>,
    /// Whether a flush task is already on its way.
    scheduled: bool,
}

/// Every thread's batch.
#[derive(Default)]
pub(super) struct Batches(ThreadLocal<Arc<Mutex<Batch>>>);

impl Batches {
    /// Queues `body` on this thread's batch. Returns where its reply will arrive, and the
    /// batch when the caller must spawn its flush (the first command since the last flush).
    pub(super) fn push(
        &self,
        body: Bytes,
        caller: Option<opentelemetry::Context>,
    ) -> (Pending, Option<Arc<Mutex<Batch>>>) {
        let (sender, receiver) = oneshot::channel();
        let batch = self.0.get_or_default().clone();
        let spawn = {
            let mut queued = batch.lock_ignoring_poison();
            queued.commands.push((body, sender, caller));
            !std::mem::replace(&mut queued.scheduled, true)
        };
        (receiver, spawn.then_some(batch))
    }
}

/// Waits one scheduling round (so that the tasks already runnable can queue their commands),
/// then takes what is queued, in chunks of at most [`MAX_BATCH`]. The batch is closed before
/// the send, so commands arriving meanwhile form the next batch, sent in parallel: batching
/// never serialises requests behind a round trip.
pub(super) async fn take(batch: &Mutex<Batch>) -> Vec<Vec<Queued>> {
    tokio::task::yield_now().await;
    let mut commands = {
        let mut queued = batch.lock_ignoring_poison();
        queued.scheduled = false;
        std::mem::take(&mut queued.commands)
    };
    let mut chunks = Vec::with_capacity(commands.len().div_ceil(MAX_BATCH));
    while commands.len() > MAX_BATCH {
        let rest = commands.split_off(MAX_BATCH);
        chunks.push(std::mem::replace(&mut commands, rest));
    }
    chunks.push(commands);
    chunks
}

/// The `/pipeline` body of `commands`: their JSON arrays inside one array.
pub(super) fn pipeline_body(commands: &[Queued]) -> Bytes {
    let mut body =
        BytesMut::with_capacity(commands.iter().map(|(c, _, _)| c.len() + 1).sum::<usize>() + 2);
    body.put_u8(b'[');
    for (i, (command, _, _)) in commands.iter().enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        body.put_slice(command);
    }
    body.put_u8(b']');
    body.freeze()
}

/// Hands each caller its own reply, or each the pipeline's failure.
pub(super) fn deliver(
    commands: Vec<Queued>,
    result: Result<Vec<Result<Reply, String>>, UpstashError>,
) {
    match result {
        Ok(items) => {
            for ((_, waiter, _), item) in commands.into_iter().zip(items) {
                let _ = waiter.send(item.map_err(UpstashError::Command));
            }
        }
        Err(error) => {
            for (_, waiter, _) in commands {
                let _ = waiter.send(Err(error.clone()));
            }
        }
    }
}
