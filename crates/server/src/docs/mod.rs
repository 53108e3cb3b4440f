//! The API's documentation: the OpenAPI document as served (`openapi`) and the pages that render it (`pages`).
//! It reads the registry (`apis`); no API reads it.

pub mod openapi;
pub mod pages;
