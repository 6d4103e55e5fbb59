//! Tests of the example rule files in config/examples/.
