//! courier-cli's library half: the loopback kit (`loopback`) that `courier demo` serves its tour
//! from, and that Courier's tests build on. The `courier` binary itself is `src/main.rs`.

pub mod loopback;
