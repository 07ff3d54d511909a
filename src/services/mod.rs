//! Services: what the pipeline uses, standing on leaves only: the connections
//! to the API server (`upstream`), the credentials added to requests, the TLS
//! settings, and the counters every layer above the leaves writes to.

pub mod credentials;
pub mod metrics;
pub mod tls;
pub mod upstream;
