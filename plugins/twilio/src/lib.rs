//! The twilio reference plugin.
