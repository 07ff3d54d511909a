//! What kproxy adds to each request so that the API server knows who asks.

mod token;

pub use token::{Token, TokenSource, TokenSourceError};
