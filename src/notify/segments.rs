//! SMS segments (being written).
