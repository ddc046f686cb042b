//! The messages of an Arrow IPC stream as they lie in a file: each is a continuation marker
//! (`0xFFFFFFFF`), a 4-byte little-endian length, that many bytes of flatbuffer metadata (a
//! `Message`, which gives the length of the body after it), then the body. A length of 0 is the
//! end-of-stream marker. A writer killed mid-message leaves a torn last message; this finds where
//! the last whole one ends.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

const CONTINUATION: [u8; 4] = [0xff; 4];

/// Length of `file` up to the end of its last whole message (schema or batch), before an
/// end-of-stream marker: what follows is a torn message or the marker, which `--resume` cuts
/// off to append batches.
pub fn complete_len(file: &mut File) -> io::Result<u64> {
    // Only what the file holds now: messages past it are not whole yet.
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(0))?;
    let mut input = BufReader::new(&*file);
    // Not even a first message's marker: another kind of file, which a resume must not take
    // for a torn stream and start afresh over.
    if len >= 4
        && input
            .fill_buf()?
            .get(..4)
            .is_some_and(|head| head != CONTINUATION)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an Arrow IPC stream (each of its messages starts with 0xFFFFFFFF)",
        ));
    }
    let (mut at, mut metadata) = (0u64, Vec::new());
    loop {
        let Some(size) = message_size(&mut input, len - at, &mut metadata)? else {
            return Ok(at);
        };
        if at + size > len {
            return Ok(at);
        }
        // The body: skipped, not read (it may be megabytes of bodies).
        let body = size - 8 - metadata.len() as u64;
        input.seek_relative(i64::try_from(body).map_err(io::Error::other)?)?;
        at += size;
    }
}

/// The whole size of the next message (its prefix, metadata and body), its metadata read into
/// `metadata`; `None` at the end of the file, at the end-of-stream marker, or at a message
/// whose prefix or metadata is torn (past the `left` bytes the file has) or not Arrow's.
fn message_size(
    input: &mut impl Read,
    left: u64,
    metadata: &mut Vec<u8>,
) -> io::Result<Option<u64>> {
    let mut prefix = [0u8; 8];
    if !read_whole(input, &mut prefix)? || prefix[..4] != CONTINUATION {
        return Ok(None);
    }
    let meta_len = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    // Checked before the metadata is read: a foreign file's length could be gigabytes.
    if meta_len == 0 || meta_len > i32::MAX as u32 || 8 + u64::from(meta_len) > left {
        return Ok(None);
    }
    metadata.resize(meta_len as usize, 0);
    if !read_whole(input, metadata)? {
        return Ok(None);
    }
    let Ok(message) = arrow_ipc::root_as_message(metadata) else {
        return Ok(None);
    };
    let Ok(body) = u64::try_from(message.bodyLength()) else {
        return Ok(None);
    };
    Ok(Some(8 + u64::from(meta_len) + body))
}

/// Fills `buf`; false when the input ends first.
fn read_whole(input: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match input.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}
