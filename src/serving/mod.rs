//! Local model serving: model files, request and response bodies, data capture, and the
//! registry of endpoints this process serves.

pub mod algorithm;
pub mod batch;
pub mod builtin;
pub mod capture;
pub mod capture_figures;
pub mod child_http;
pub mod codec;
pub mod cpus;
pub mod endpoint_logs;
pub mod endpoints;
pub mod explain;
pub mod invoke;
pub mod limiter;
pub mod model_archive;
pub mod onnx;
mod port_holder;
pub mod process;
pub mod rows;
pub mod xgboost;
