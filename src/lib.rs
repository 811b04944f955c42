//! mlops-orchestrator: a control plane for machine-learning pipelines.
//!
//! Data flows one way: HTTP / Git → `domain` (validate into typed values) → `store` → `jobs` →
//! `targets` → `store` → notifications. See `docs/ARCHITECTURE.md`.

pub mod analyzer;
pub mod app;
pub mod artifacts;
pub mod auth;
pub mod client;
pub mod config;
pub mod domain;
pub mod encode;
pub mod error;
pub mod host;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod server;
pub mod services;
pub mod serving;
pub mod sources;
pub mod state;
pub mod store;
pub mod targets;
pub mod tasks;
pub mod telemetry;

pub use app::start;
pub use config::Settings;
