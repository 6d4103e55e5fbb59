//! Property tests of scoring.
