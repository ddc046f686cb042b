mod client;
mod error;
mod request;
mod response;

pub use client::{connector::Connector, key::Key, unified, Builder, Client, ClientConfig};
// ringscrape patch: the connection type, so that one HTTP/2 connection can be shared by many
// requests without the pool (which opens one connection per waiting task).
pub use client::connection::HttpConnection;
pub use error::{Error, Result};
pub use request::{BodyLimit, ClientRequest};
pub use response::ClientResponse;
