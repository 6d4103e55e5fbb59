//! Adapters defined in TOML (work in progress).
