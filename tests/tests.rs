//! ringscrape's integration tests, one binary (as ripgrep's): each module runs the built binary
//! (or, in `in_process`, the supervisor as a library) against real servers on loopback, or in
//! network namespaces of its own, and checks what it wrote row by row. `common` holds the
//! servers and the command builder they share; tests/README.md says what each module covers.

mod arrow;
mod auth;
mod bad_input;
mod bomb;
mod common;
mod config_file;
mod dashboard;
mod decoding;
mod diagnosis;
mod dns;
mod dns_scale;
mod docs;
mod driver;
mod extract;
mod faults;
mod help;
mod hostile;
mod hosts;
mod http2;
mod ids_file;
mod in_process;
mod interrupt;
mod jsonl;
mod key_files;
mod keys;
mod lock;
mod memory;
mod metrics;
mod nodes;
mod pacing;
mod pages;
mod parquet;
mod pipeline;
mod placeholders;
mod pool;
mod proxies;
mod quota;
mod rate;
mod raw_answers;
mod references;
mod requests;
mod robots;
mod routing;
mod slurm;
mod stops;
mod summary;
mod third_party;
mod tls;
mod tune;
mod urls;
