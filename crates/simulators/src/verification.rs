//! Verification server simulator (built by the verification adapter work).
