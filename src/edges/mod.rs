//! Edges: where kproxy meets the world, standing on everything below: flags
//! (`cli`), files and environment (`config`), sockets (`listen`, with the
//! metrics port), signals, and the `kproxy check` probe.

pub mod check;
pub mod cli;
pub mod config;
pub mod listen;
pub mod signals;
