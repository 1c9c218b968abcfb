//! Stand-in for the Twilio Messages API.
