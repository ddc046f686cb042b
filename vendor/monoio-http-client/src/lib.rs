mod client;
mod error;
mod request;
mod response;

pub use client::{connector::Connector, key::Key, unified, Builder, Client, ClientConfig};
pub use error::{Error, Result};
pub use request::{BodyLimit, ClientRequest};
pub use response::ClientResponse;
