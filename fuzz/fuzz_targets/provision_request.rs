//! A provisioning request as a config source reads it (`mlops-config.json`: one body of
//! `/provisionpipeline`, or a list of them; the HTTP APIs hand the same JSON to the same
//! validation), under a single environment, three environments, and the model registry. Either
//! field errors that point into the body, or a spec that plans; the spec and its plan come back
//! equal from JSON, as the store keeps and rereads them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlops::domain::config_file;
use mlops::domain::{Plan, PipelineSpec, RequestContext, parse_request, plan};

fn contexts() -> [RequestContext; 3] {
    let three = || vec!["dev".to_string(), "staging".to_string(), "prod".to_string()];
    [
        RequestContext { environments: Vec::new(), use_model_registry: false },
        RequestContext { environments: three(), use_model_registry: false },
        RequestContext { environments: three(), use_model_registry: true },
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(requests) = config_file::requests(data) else { return };
    for body in &requests {
        for ctx in contexts() {
            match parse_request(body, &ctx) {
                Err(errors) => {
                    assert!(!errors.0.is_empty(), "refused without a reason");
                    for e in &errors.0 {
                        assert!(e.pointer.is_empty() || e.pointer.starts_with('/'), "pointer {:?}", e.pointer);
                        assert!(!e.message.is_empty(), "no message at {:?}", e.pointer);
                    }
                }
                Ok(valid) => {
                    let spec = &valid.spec;
                    let stored = serde_json::to_value(spec).expect("a spec serialises");
                    let reread: PipelineSpec = serde_json::from_value(stored.clone())
                        .unwrap_or_else(|e| panic!("the stored spec does not read back: {e}\n{stored:#}"));
                    assert_eq!(&reread, spec, "the spec reads back different:\n{stored:#}");
                    if let Ok(planned) = plan(spec, &ctx, 7) {
                        assert!(!planned.stages.is_empty(), "a plan without stages");
                        let stored = serde_json::to_value(&planned).expect("a plan serialises");
                        let reread: Plan = serde_json::from_value(stored.clone())
                            .unwrap_or_else(|e| panic!("the stored plan does not read back: {e}\n{stored:#}"));
                        assert_eq!(reread, planned, "the plan reads back different:\n{stored:#}");
                    }
                }
            }
        }
    }
});
