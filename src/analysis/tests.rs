//! Table-driven tests of the analyzer.
