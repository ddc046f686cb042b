//! For tests: an in-memory connection that plays back what a server sends, read by read, and
//! keeps what the client wrote. A dialer hands out scripted connections in the order given
//! ([`Dialer::script`](super::connect::Dialer::script)), so the fetch path runs whole without
//! a socket.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut};

/// One read's worth of what the server does.
pub enum Read {
    /// These bytes arrive (a read takes as many as fit).
    Bytes(Vec<u8>),
    /// The server closed the connection: the read gets 0.
    End,
    /// The read fails (a reset, say).
    Fail(io::ErrorKind),
}

/// A scripted connection.
pub struct Script {
    reads: VecDeque<Read>,
    /// What the client wrote, shared with the test.
    pub written: Rc<RefCell<Vec<u8>>>,
    /// An idle peek would find it closed (or sent something unasked).
    pub closed_while_idle: bool,
}

impl Script {
    /// A connection on which the server sends each of `answers` in turn (one read each), then
    /// closes it.
    pub fn answers(answers: &[&[u8]]) -> Script {
        Script::reads(answers.iter().map(|a| Read::Bytes(a.to_vec())).collect())
    }

    pub fn reads(reads: Vec<Read>) -> Script {
        Script {
            reads: reads.into(),
            written: Rc::default(),
            closed_while_idle: false,
        }
    }

    pub fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        match self.reads.pop_front() {
            None | Some(Read::End) => (Ok(0), buf),
            Some(Read::Fail(kind)) => (Err(io::Error::from(kind)), buf),
            Some(Read::Bytes(mut bytes)) => {
                let n = bytes.len().min(buf.bytes_total());
                // SAFETY: `write_ptr` points at `bytes_total()` writable bytes and `n` is no more;
                // `set_init(n)` then says exactly those were written.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.write_ptr(), n);
                    buf.set_init(n);
                }
                if n < bytes.len() {
                    self.reads.push_front(Read::Bytes(bytes.split_off(n)));
                }
                (Ok(n), buf)
            }
        }
    }

    pub fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `read_ptr` points at `bytes_init()` initialised bytes that `buf` owns.
        let bytes = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        self.written.borrow_mut().extend_from_slice(bytes);
        (Ok(bytes.len()), buf)
    }
}
