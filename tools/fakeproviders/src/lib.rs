//! Fake providers (being written).
