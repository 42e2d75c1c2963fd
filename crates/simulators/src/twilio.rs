//! Twilio Lookup v2 simulator (built by the Twilio adapter work).
