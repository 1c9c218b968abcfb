//! Stand-in for the Stripe PaymentIntents and Refunds API.
