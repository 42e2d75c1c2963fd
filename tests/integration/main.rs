//! The workspace integration suite.

mod pipeline_memory;
