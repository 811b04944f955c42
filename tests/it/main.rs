//! The integration test binary: every module runs against real components (SQLite files, a real
//! Postgres server, the real HTTP server on a loopback port).

mod support;

mod algorithms;
mod analyzer;
pub mod analyzer_formats;
mod approvals;
mod assets;
mod attribution;
mod automl;
mod aws_harness;
mod aws_policy;
#[cfg(feature = "aws")]
mod aws_target;
#[cfg(feature = "aws")]
mod aws_templates;
mod bad_requests;
mod batch;
mod bias;
mod binary;
mod cli;
mod config_sources;
mod contract;
mod custom;
mod event_stream;
mod fuzz_findings;
mod job_lease;
mod kernel_shap;
mod layering;
mod lifecycle;
mod metrics;
mod model_cards;
mod model_registry;
mod monitors;
pub mod notifications;
mod onnx;
mod openapi;
mod pipeline_jobs;
#[cfg(feature = "aws")]
mod replicas;
mod server_basics;
mod serving;
mod sigv4;
mod solution_fixtures;
mod store_contract;
mod training;
mod walkthrough;
mod xgboost;
