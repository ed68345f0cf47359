//! Streaming a response produced by blocking code: the producer writes into a
//! [`ChannelWriter`] on a blocking thread; the response body reads the
//! channel. The channel is bounded, so a slow client slows the producer
//! instead of growing memory, and a client that goes away stops it.

use std::io::{self, Write};

use actix_web::web::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

const BUFFER_BYTES: usize = 64 * 1024;
const CHANNEL_CHUNKS: usize = 8;

pub struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buffer: Vec<u8>,
}

/// A writer for blocking code and the body stream it feeds.
pub fn channel() -> (ChannelWriter, impl Stream<Item = Result<Bytes, io::Error>>) {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let writer = ChannelWriter {
        tx,
        buffer: Vec::with_capacity(BUFFER_BYTES),
    };
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (writer, stream)
}

impl ChannelWriter {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(BUFFER_BYTES),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Ends the body with an error (the client sees a truncated transfer).
    pub fn fail(self, error: String) {
        let _ = self.tx.blocking_send(Err(io::Error::other(error)));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= BUFFER_BYTES {
            self.send_buffer()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}
