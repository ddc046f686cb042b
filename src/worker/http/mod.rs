//! HTTP on a connection: each protocol's exchange (`h1` over the sans-IO reader `h1_parse`, the
//! head's bytes it scans, `h1_head`, and the header fields it acts on, `h1_fields`; `h2` over
//! the `h2` crate), what an answer is read into and for (`answer`), undoing content codings
//! (`decode`) and the body file a spooled answer goes to (`spool`); `shared` gives the slot one
//! shape for every protocol whose connections many requests share.

pub(super) mod answer;
pub(super) mod decode;
pub(super) mod h1;
mod h1_fields;
mod h1_head;
pub(super) mod h1_parse;
pub(super) mod h2;
#[cfg(test)]
mod request_tests;
pub(super) mod shared;
pub(super) mod spool;
