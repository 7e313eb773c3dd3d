//! `stockade serve`: the host service.

pub mod launcher;
