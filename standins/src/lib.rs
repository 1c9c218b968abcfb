//! Local stand-ins for the Twilio and Stripe HTTP APIs, for tests and the
//! offline demo. They are named as stand-ins wherever they are used: they
//! check requests the way the real APIs do, but they are not those APIs.

#![deny(unsafe_code)]

pub mod stripe;
pub mod twilio;
