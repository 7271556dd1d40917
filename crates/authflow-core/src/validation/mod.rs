//! Validation of the identifiers a client sends: client ids, redirect URIs and resource indicators.

pub mod client_id;
pub mod redirect_uri;
pub mod resource;
