//! Provider clients (being written).
