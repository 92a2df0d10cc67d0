//! Images.
use crate::support::Test;
pub const TESTS: &[(&str, Test)] = &[];
