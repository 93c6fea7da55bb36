//! Auto-pipelining: retry-safe single commands issued at the same moment on one thread are
//! sent together as one `/pipeline` request (as the official JS SDK does).
//!
//! Each caller still waits for exactly one round trip, and each command is still one command
//! (Upstash bills per command), but under concurrency many requests share one HTTP exchange,
//! which is most of the client's CPU cost. A command alone is sent as a plain single command.
//! Batches are per thread: actix-web's workers are single-threaded runtimes, so a batch, its
//! flush task and its connection stay on one thread.

use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::oneshot;

use super::{
    client::{check_len, RetryPolicy, UpstashClient},
    command::Command,
    error::UpstashError,
    reply::{parse_pipeline_body, parse_single_body, Reply},
};

/// Most commands in one pipeline request; more go in further requests, in parallel.
const MAX_BATCH: usize = 128;

type Waiter = oneshot::Sender<Result<Reply, UpstashError>>;

/// The commands queued on one thread, waiting for their flush.
#[derive(Default)]
pub(super) struct Batch {
    commands: Vec<(Bytes, Waiter)>,
    /// Whether a flush task is already on its way.
    scheduled: bool,
}

impl UpstashClient {
    /// Runs one retry-safe command, sharing a `/pipeline` request with the commands other
    /// tasks on this thread issue at the same moment.
    pub async fn command_coalesced(
        self: &Arc<Self>,
        command: &Command<'_>,
    ) -> Result<Reply, UpstashError> {
        let body = serde_json::to_vec(command)
            .map(Bytes::from)
            .map_err(|e| UpstashError::Protocol(format!("cannot encode command: {e}")))?;
        let (sender, receiver) = oneshot::channel();
        let batch = self.batches.get_or_default().clone();
        let spawn = {
            let mut queued = lock(&batch);
            queued.commands.push((body, sender));
            !std::mem::replace(&mut queued.scheduled, true)
        };
        if spawn {
            tokio::spawn(self.clone().flush(batch));
        }
        receiver.await.unwrap_or_else(|_| {
            Err(UpstashError::Protocol(
                "the pipeline task ended without an answer".into(),
            ))
        })
    }

    /// Waits one scheduling round (so that the tasks already runnable can queue their
    /// commands), then takes what is queued and sends it. The batch is closed before the
    /// send, so commands arriving meanwhile form the next batch, sent in parallel: batching
    /// never serialises requests behind a round trip.
    async fn flush(self: Arc<Self>, batch: Arc<Mutex<Batch>>) {
        tokio::task::yield_now().await;
        let mut commands = {
            let mut queued = lock(&batch);
            queued.scheduled = false;
            std::mem::take(&mut queued.commands)
        };
        while commands.len() > MAX_BATCH {
            let rest = commands.split_off(MAX_BATCH);
            let chunk = std::mem::replace(&mut commands, rest);
            let client = self.clone();
            tokio::spawn(async move { client.send_batch(chunk).await });
        }
        self.send_batch(commands).await;
    }

    async fn send_batch(&self, commands: Vec<(Bytes, Waiter)>) {
        if commands.len() == 1 {
            let Some((body, waiter)) = commands.into_iter().next() else {
                return;
            };
            let result = self
                .call(
                    &self.root,
                    "command",
                    body,
                    RetryPolicy::Idempotent,
                    |bytes| parse_single_body(bytes, true),
                )
                .await;
            let _ = waiter.send(result);
            return;
        }
        let mut body =
            BytesMut::with_capacity(commands.iter().map(|(c, _)| c.len() + 1).sum::<usize>() + 2);
        body.put_u8(b'[');
        for (i, (command, _)) in commands.iter().enumerate() {
            if i > 0 {
                body.put_u8(b',');
            }
            body.put_slice(command);
        }
        body.put_u8(b']');
        let expected = commands.len();
        let result = self
            .call(
                &self.pipeline,
                "pipeline",
                body.freeze(),
                RetryPolicy::Idempotent,
                |bytes| check_len(parse_pipeline_body(bytes, true)?, expected),
            )
            .await;
        match result {
            Ok(items) => {
                for ((_, waiter), item) in commands.into_iter().zip(items) {
                    let _ = waiter.send(item.map_err(UpstashError::Command));
                }
            }
            Err(error) => {
                for (_, waiter) in commands {
                    let _ = waiter.send(Err(error.clone()));
                }
            }
        }
    }
}

fn lock(batch: &Mutex<Batch>) -> std::sync::MutexGuard<'_, Batch> {
    batch.lock().unwrap_or_else(|p| p.into_inner())
}
