//! Lifecycle tests.
use crate::support::Test;
pub const TESTS: &[(&str, Test)] = &[];
