//! Leaves: what the layers above stand on, importing nothing above: HTTP
//! framing (with the refusal reasons it writes), YAML as kubectl reads it,
//! base64, JSON strings, logging, the memory budget, the canonical path, the
//! client's socket, and a secret that never prints.

pub mod base64;
pub mod budget;
pub mod http;
pub mod json;
pub mod log;
pub mod path;
pub mod secret;
pub mod socket;
pub mod yaml;
