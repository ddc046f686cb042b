pub mod common;
pub mod h1;
pub mod h2;
pub mod util;
