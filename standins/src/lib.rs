//! Local stand-ins for cloud APIs.
