//! What the tests share: the service on a random port and its client (`helpers`), the fake
//! Upstash (`fake_upstash`), and HTTPS in process (`tls_front`).

pub mod fake_upstash;
pub mod helpers;
pub mod tls_front;
