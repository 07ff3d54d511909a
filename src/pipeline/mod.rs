//! The pipeline: what happens to one request, standing on services and
//! leaves. `route` decides where it may go, without I/O; `exchange` carries it
//! to the API server and its answer back; `www` serves `--www` files.

pub mod exchange;
pub mod route;
pub mod www;
