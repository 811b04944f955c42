//! CloudFormation templates as the front needs them: YAML (with the short `!Ref`/`!Sub`/`!GetAtt`
//! tags) or JSON into one JSON form with long intrinsics, and a resolver for `Ref`, `Fn::Sub`,
//! `Fn::Join`, `Fn::If` + Conditions, `Fn::Select`, `Fn::Split`, `Fn::GetAtt`, `Fn::FindInMap`,
//! `Fn::Base64`, `Fn::GetAZs`, `Fn::ToJsonString` against a stack's parameters, pseudo
//! parameters and physical resource ids. Only the resources moto skips (CodePipeline pipelines,
//! SageMaker monitoring schedules) are resolved with it.

use base64::Engine;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// Parses a template body (JSON or YAML) into JSON with long-form intrinsics.
pub fn parse(body: &str) -> Result<Value, String> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return Ok(v);
    }
    let y: serde_norway::Value =
        serde_norway::from_str(body).map_err(|e| format!("template is neither JSON nor YAML: {e}"))?;
    Ok(yaml_to_json(y))
}

fn yaml_key(k: serde_norway::Value) -> String {
    match yaml_to_json(k) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn yaml_to_json(y: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64().unwrap_or(0.0))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(m.into_iter().map(|(k, v)| (yaml_key(k), yaml_to_json(v))).collect()),
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!').to_string();
            let inner = yaml_to_json(t.value);
            match name.as_str() {
                "Ref" => json!({ "Ref": inner }),
                "Condition" => json!({ "Condition": inner }),
                "GetAtt" => {
                    let args = match inner {
                        Value::String(s) => match s.split_once('.') {
                            Some((r, a)) => json!([r, a]),
                            None => json!([s]),
                        },
                        other => other,
                    };
                    json!({ "Fn::GetAtt": args })
                }
                _ => {
                    let mut m = Map::new();
                    m.insert(format!("Fn::{name}"), inner);
                    Value::Object(m)
                }
            }
        }
    }
}

/// A value as CloudFormation stringifies it for a parameter or a property.
pub fn as_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(as_string).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// What a template is resolved against.
pub struct Ctx<'a> {
    template: &'a Value,
    params: HashMap<String, Value>,
    pseudo: HashMap<&'static str, Value>,
    physical: HashMap<String, String>,
    conditions: HashMap<String, bool>,
    stack_name: String,
    account: String,
    region: String,
}

impl<'a> Ctx<'a> {
    /// `given`: the stack's parameter values; template defaults fill the rest. `physical`:
    /// logical id → physical id from the stack's resources in moto.
    pub fn new(
        template: &'a Value,
        given: &HashMap<String, String>,
        stack_name: &str,
        stack_id: &str,
        account: &str,
        region: &str,
        physical: HashMap<String, String>,
    ) -> Ctx<'a> {
        let mut params = HashMap::new();
        if let Some(decls) = template.get("Parameters").and_then(Value::as_object) {
            for (name, decl) in decls {
                let raw = given.get(name).cloned().or_else(|| decl.get("Default").map(as_string));
                let Some(raw) = raw else { continue };
                let ty = decl.get("Type").and_then(Value::as_str).unwrap_or("String");
                let v = if ty == "CommaDelimitedList" || ty.starts_with("List<") {
                    Value::Array(raw.split(',').map(|s| Value::String(s.trim().to_string())).collect())
                } else {
                    Value::String(raw)
                };
                params.insert(name.clone(), v);
            }
        }
        // Parameters passed but not declared still resolve (moto accepts them too).
        for (k, v) in given {
            params.entry(k.clone()).or_insert_with(|| Value::String(v.clone()));
        }
        let mut pseudo = HashMap::new();
        pseudo.insert("AWS::StackName", json!(stack_name));
        pseudo.insert("AWS::StackId", json!(stack_id));
        pseudo.insert("AWS::AccountId", json!(account));
        pseudo.insert("AWS::Region", json!(region));
        pseudo.insert("AWS::Partition", json!("aws"));
        pseudo.insert("AWS::URLSuffix", json!("amazonaws.com"));
        pseudo.insert("AWS::NotificationARNs", json!([]));
        let mut ctx = Ctx {
            template,
            params,
            pseudo,
            physical,
            conditions: HashMap::new(),
            stack_name: stack_name.to_string(),
            account: account.to_string(),
            region: region.to_string(),
        };
        if let Some(conds) = template.get("Conditions").and_then(Value::as_object) {
            let names: Vec<String> = conds.keys().cloned().collect();
            for name in names {
                let mut visiting = Vec::new();
                let v = ctx.condition(&name, &mut visiting);
                ctx.conditions.insert(name, v);
            }
        }
        ctx
    }

    fn condition(&self, name: &str, visiting: &mut Vec<String>) -> bool {
        if let Some(v) = self.conditions.get(name) {
            return *v;
        }
        if visiting.iter().any(|n| n == name) {
            return false;
        }
        visiting.push(name.to_string());
        let expr = self.template.get("Conditions").and_then(|c| c.get(name)).cloned().unwrap_or(Value::Bool(false));
        let v = self.eval_bool(&expr, visiting);
        visiting.pop();
        v
    }

    fn eval_bool(&self, expr: &Value, visiting: &mut Vec<String>) -> bool {
        let Some(obj) = expr.as_object().filter(|o| o.len() == 1) else {
            return match expr {
                Value::Bool(b) => *b,
                Value::String(s) => s == "true",
                _ => false,
            };
        };
        let (k, arg) = obj.iter().next().unwrap();
        let args = arg.as_array().cloned().unwrap_or_default();
        match k.as_str() {
            "Condition" => self.condition(arg.as_str().unwrap_or_default(), visiting),
            "Fn::Equals" if args.len() == 2 => {
                let a = self.resolve(&args[0]).map(|v| as_string(&v)).unwrap_or_default();
                let b = self.resolve(&args[1]).map(|v| as_string(&v)).unwrap_or_default();
                a == b
            }
            "Fn::Not" if args.len() == 1 => !self.eval_bool(&args[0], visiting),
            "Fn::And" => args.iter().all(|a| self.eval_bool(a, visiting)),
            "Fn::Or" => args.iter().any(|a| self.eval_bool(a, visiting)),
            _ => false,
        }
    }

    /// Whether a resource's `Condition` holds (true without one).
    pub fn resource_enabled(&self, resource: &Value) -> bool {
        match resource.get("Condition").and_then(Value::as_str) {
            Some(c) => self.conditions.get(c).copied().unwrap_or(false),
            None => true,
        }
    }

    fn resource(&self, logical: &str) -> Option<&Value> {
        self.template.get("Resources").and_then(|r| r.get(logical))
    }

    /// The name of a resource moto did not create: its explicit name property, else a generated one.
    fn skipped_name(&self, logical: &str) -> Option<String> {
        let res = self.resource(logical)?;
        let props = res.get("Properties").cloned().unwrap_or(Value::Null);
        for key in ["Name", "MonitoringScheduleName", "JobDefinitionName", "RoleName", "TopicName"] {
            if let Some(v) = props.get(key).and_then(|v| self.resolve(v)) {
                return Some(as_string(&v));
            }
        }
        Some(format!("{}-{logical}", self.stack_name))
    }

    /// `Ref` of a resource: moto's physical id, or for a resource moto skips what AWS returns
    /// (an ARN for SageMaker job definitions and monitoring schedules, else the name).
    fn ref_resource(&self, logical: &str) -> Option<String> {
        if let Some(p) = self.physical.get(logical) {
            return Some(p.clone());
        }
        let name = self.skipped_name(logical)?;
        let ty = self.resource(logical).and_then(|r| r.get("Type")).and_then(Value::as_str).unwrap_or("");
        let kind = match ty {
            "AWS::SageMaker::DataQualityJobDefinition" => "data-quality-job-definition",
            "AWS::SageMaker::ModelQualityJobDefinition" => "model-quality-job-definition",
            "AWS::SageMaker::ModelBiasJobDefinition" => "model-bias-job-definition",
            "AWS::SageMaker::ModelExplainabilityJobDefinition" => "model-explainability-job-definition",
            "AWS::SageMaker::MonitoringSchedule" => "monitoring-schedule",
            _ => return Some(name),
        };
        Some(format!("arn:aws:sagemaker:{}:{}:{kind}/{name}", self.region, self.account))
    }

    fn get_att(&self, logical: &str, attr: &str) -> Value {
        if let Some(p) = self.physical.get(logical) {
            if attr.ends_with("Arn") && p.starts_with("arn:") {
                return json!(p);
            }
            if p.starts_with("arn:") && (attr.ends_with("Name") || attr == "Id") {
                return json!(p.rsplit(['/', ':']).next().unwrap_or(p));
            }
            if attr == "Arn" && !p.starts_with("arn:") {
                let ty = self.resource(logical).and_then(|r| r.get("Type")).and_then(Value::as_str).unwrap_or("");
                let (account, region) = (&self.account, &self.region);
                return json!(match ty {
                    "AWS::IAM::Role" => format!("arn:aws:iam::{account}:role/{p}"),
                    "AWS::IAM::ManagedPolicy" => format!("arn:aws:iam::{account}:policy/{p}"),
                    "AWS::KMS::Key" => format!("arn:aws:kms:{region}:{account}:key/{p}"),
                    "AWS::S3::Bucket" => format!("arn:aws:s3:::{p}"),
                    _ => {
                        let svc = ty.split("::").nth(1).unwrap_or("unknown").to_ascii_lowercase();
                        format!("arn:aws:{svc}:{region}:{account}:{p}")
                    }
                });
            }
            return json!(p);
        }
        let props = self.resource(logical).and_then(|r| r.get("Properties")).cloned().unwrap_or(Value::Null);
        if let Some(v) = props.get(attr).and_then(|v| self.resolve(v)) {
            return v;
        }
        let reference = self.ref_resource(logical).unwrap_or_else(|| logical.to_string());
        if attr.ends_with("Arn") && reference.starts_with("arn:") {
            return json!(reference);
        }
        let name = self.skipped_name(logical).unwrap_or_else(|| logical.to_string());
        if attr.ends_with("Arn") {
            let ty = self.resource(logical).and_then(|r| r.get("Type")).and_then(Value::as_str).unwrap_or("");
            let svc = ty.split("::").nth(1).unwrap_or("unknown").to_ascii_lowercase();
            return json!(format!("arn:aws:{svc}:{}:{}:{name}", self.region, self.account));
        }
        json!(name)
    }

    fn reference(&self, name: &str) -> Option<Value> {
        if name == "AWS::NoValue" {
            return None;
        }
        if let Some(v) = self.params.get(name) {
            return Some(v.clone());
        }
        if let Some(v) = self.pseudo.get(name) {
            return Some(v.clone());
        }
        Some(json!(self.ref_resource(name).unwrap_or_else(|| name.to_string())))
    }

    fn sub(&self, text: &str, vars: &Map<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let var = &after[..end];
            if let Some(literal) = var.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(var) {
                out.push_str(&self.resolve(v).map(|v| as_string(&v)).unwrap_or_default());
            } else if let Some((r, a)) = var.split_once('.').filter(|_| !var.starts_with("AWS::")) {
                out.push_str(&as_string(&self.get_att(r, a)));
            } else {
                out.push_str(&self.reference(var).map(|v| as_string(&v)).unwrap_or_default());
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Resolves every intrinsic in `v`; `None` is `AWS::NoValue` (the key or element disappears).
    pub fn resolve(&self, v: &Value) -> Option<Value> {
        match v {
            Value::Array(items) => Some(Value::Array(items.iter().filter_map(|i| self.resolve(i)).collect())),
            Value::Object(obj) if obj.len() == 1 => {
                let (k, arg) = obj.iter().next().unwrap();
                let args = arg.as_array().cloned().unwrap_or_default();
                match k.as_str() {
                    "Ref" => self.reference(arg.as_str().unwrap_or_default()),
                    "Fn::Sub" => {
                        let (text, vars) = match arg {
                            Value::String(s) => (s.clone(), Map::new()),
                            Value::Array(a) if !a.is_empty() => (
                                a[0].as_str().unwrap_or_default().to_string(),
                                a.get(1).and_then(Value::as_object).cloned().unwrap_or_default(),
                            ),
                            _ => (String::new(), Map::new()),
                        };
                        Some(json!(self.sub(&text, &vars)))
                    }
                    "Fn::Join" if args.len() == 2 => {
                        let sep = as_string(&args[0]);
                        let list = self.resolve(&args[1]).unwrap_or(json!([]));
                        let parts: Vec<String> =
                            list.as_array().map(|a| a.iter().map(as_string).collect()).unwrap_or_default();
                        Some(json!(parts.join(&sep)))
                    }
                    "Fn::If" if args.len() == 3 => {
                        let c = self.conditions.get(args[0].as_str().unwrap_or_default()).copied().unwrap_or(false);
                        self.resolve(if c { &args[1] } else { &args[2] })
                    }
                    "Fn::Select" if args.len() == 2 => {
                        let idx = as_string(&self.resolve(&args[0]).unwrap_or(json!(0))).parse::<usize>().unwrap_or(0);
                        let list = self.resolve(&args[1]).unwrap_or(json!([]));
                        list.as_array().and_then(|a| a.get(idx).cloned())
                    }
                    "Fn::Split" if args.len() == 2 => {
                        let sep = as_string(&args[0]);
                        let s = as_string(&self.resolve(&args[1]).unwrap_or(json!("")));
                        Some(Value::Array(s.split(sep.as_str()).map(|p| json!(p)).collect()))
                    }
                    "Fn::GetAtt" => {
                        let (r, a) = match arg {
                            Value::String(s) => s.split_once('.').map(|(r, a)| (r.to_string(), a.to_string()))?,
                            _ if args.len() == 2 => (as_string(&args[0]), as_string(&self.resolve(&args[1])?)),
                            _ => return None,
                        };
                        Some(self.get_att(&r, &a))
                    }
                    "Fn::FindInMap" if args.len() == 3 => {
                        let keys: Vec<String> =
                            args.iter().map(|a| as_string(&self.resolve(a).unwrap_or_default())).collect();
                        self.template.get("Mappings")?.get(&keys[0])?.get(&keys[1])?.get(&keys[2]).cloned()
                    }
                    "Fn::Base64" => {
                        let s = as_string(&self.resolve(arg).unwrap_or_default());
                        Some(json!(base64::engine::general_purpose::STANDARD.encode(s)))
                    }
                    "Fn::GetAZs" => {
                        Some(json!(["a", "b", "c"].iter().map(|z| format!("{}{z}", self.region)).collect::<Vec<_>>()))
                    }
                    "Fn::ToJsonString" => Some(json!(self.resolve(arg).unwrap_or_default().to_string())),
                    "Fn::ImportValue" => Some(json!(as_string(&self.resolve(arg).unwrap_or_default()))),
                    _ => self.resolve_object(obj),
                }
            }
            Value::Object(obj) => self.resolve_object(obj),
            other => Some(other.clone()),
        }
    }

    fn resolve_object(&self, obj: &Map<String, Value>) -> Option<Value> {
        Some(Value::Object(obj.iter().filter_map(|(k, v)| self.resolve(v).map(|v| (k.clone(), v))).collect()))
    }
}

/// Resources of one type in a template: (logical id, resource).
pub fn resources_of_type<'t>(template: &'t Value, ty: &str) -> Vec<(&'t str, &'t Value)> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .map(|r| {
            r.iter()
                .filter(|(_, res)| res.get("Type").and_then(Value::as_str) == Some(ty))
                .map(|(k, v)| (k.as_str(), v))
                .collect()
        })
        .unwrap_or_default()
}
