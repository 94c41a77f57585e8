//! A copy of a download's bytes as they arrive (still gzip, as DAP served them), for the
//! archive: the same download feeds the database and the copy.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// What a tee receives: the body's chunks as they arrive, then `End` from whoever read the
/// download once it has read it whole and found it good (a load that committed): the
/// download itself never sends `End`, since a body that arrives whole may still hold bad
/// data. A tee whose senders go without `End` saw the download fail, or its load be given
/// up, and must keep nothing of it.
#[derive(Debug)]
pub enum Received {
    Chunk(Bytes),
    End,
}

/// Where a download's copy goes. A bounded channel: a tee slower than the download slows
/// it, so memory stays bounded.
pub type Tee = tokio::sync::mpsc::Sender<Received>;

/// `body`, with each chunk also sent to `tee`.
pub(crate) fn teed<S>(body: S, tee: Tee) -> impl Stream<Item = std::io::Result<Bytes>> + Send
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
{
    futures_util::stream::unfold(Some((Box::pin(body), tee)), |state| async move {
        let (mut body, tee) = state?;
        match body.next().await {
            Some(Ok(chunk)) => {
                // A tee that stopped (its write failed) reports that itself; the download goes on.
                let _ = tee.send(Received::Chunk(chunk.clone())).await;
                Some((Ok(chunk), Some((body, tee))))
            }
            // The error ends the stream, and the tee goes.
            Some(Err(e)) => Some((Err(e), None)),
            None => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn drain(mut rx: tokio::sync::mpsc::Receiver<Received>) -> (Vec<u8>, bool) {
        let (mut bytes, mut ended) = (Vec::new(), false);
        while let Some(r) = rx.recv().await {
            match r {
                Received::Chunk(c) => bytes.extend_from_slice(&c),
                Received::End => ended = true,
            }
        }
        (bytes, ended)
    }

    #[tokio::test]
    async fn a_body_is_copied_chunk_by_chunk_and_never_ended_by_the_download() {
        let chunks = vec![Ok(Bytes::from_static(b"ab")), Ok(Bytes::from_static(b"cd"))];
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let read = tokio::spawn(drain(rx));
        let passed: Vec<_> = teed(futures_util::stream::iter(chunks), tx).collect().await;
        assert_eq!(passed.len(), 2);
        assert_eq!(read.await.unwrap(), (b"abcd".to_vec(), false), "only the reader that checked it ends it");

        let broken = vec![Ok(Bytes::from_static(b"ab")), Err(std::io::Error::other("reset")), Ok(Bytes::new())];
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let read = tokio::spawn(drain(rx));
        let passed: Vec<_> = teed(futures_util::stream::iter(broken), tx).collect().await;
        assert_eq!(passed.len(), 2, "the stream ends at its error");
        assert_eq!(read.await.unwrap(), (b"ab".to_vec(), false));
    }
}
