//! PROXY protocol v1 and v2 (work in progress).
#![no_std]
#![forbid(unsafe_code)]
