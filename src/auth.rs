//! Bearer-token authentication with roles (DESIGN §7). Tokens come from configuration and are
//! kept only as SHA-256 digests; they are long random secrets, so a fast hash is the right tool
//! (no password stretching needed). Requests signed with AWS SigV4 by configured access keys are
//! the other way in ([`sigv4`]), for the solution's IAM-signing clients.

pub mod sigv4;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    Approver,
    Viewer,
    Invoker,
}

/// What a request wants to do; each role grants a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read pipelines, stages, events, endpoints and assets.
    Read,
    /// Provision, update and delete pipelines; upload assets.
    Operate,
    /// Approve or reject a stage.
    Approve,
    /// Call an endpoint.
    Invoke,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Viewer => "viewer",
            Role::Invoker => "invoker",
        })
    }
}

impl Role {
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Operator => matches!(permission, Read | Operate),
            Role::Approver => matches!(permission, Read | Approve),
            Role::Viewer => matches!(permission, Read),
            Role::Invoker => matches!(permission, Invoke),
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

impl Principal {
    /// The caller in `--dev` mode, where authentication is off.
    pub fn anonymous_admin() -> Self {
        Self { name: "anonymous".into(), role: Role::Admin }
    }
}

#[derive(Debug, Clone)]
pub struct TokenRegistry {
    by_digest: HashMap<[u8; 32], Principal>,
    /// SigV4 access keys by key id.
    access_keys: HashMap<String, sigv4::AccessKey>,
    /// `--dev`: every request is an anonymous admin.
    open: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the bearer token is not valid")]
    Invalid,
    #[error("{name:?} has role {role}, which may not do this (needs {needed})")]
    Forbidden { name: String, role: Role, needed: &'static str },
    /// A SigV4-signed request that does not verify (API Gateway answers these with 403).
    #[error(transparent)]
    Signature(#[from] sigv4::SignatureError),
}

impl TokenRegistry {
    /// Tokens as `(SHA-256 of the token, who it belongs to)`; `open` is `--dev`.
    pub fn new(tokens: impl IntoIterator<Item = ([u8; 32], Principal)>, open: bool) -> Self {
        Self { by_digest: tokens.into_iter().collect(), access_keys: HashMap::new(), open }
    }

    /// Adds SigV4 access keys (key id, key).
    pub fn with_access_keys(mut self, keys: impl IntoIterator<Item = (String, sigv4::AccessKey)>) -> Self {
        self.access_keys.extend(keys);
        self
    }

    /// The signer of a SigV4-signed request, checked at `now`.
    pub fn verify_signed(
        &self,
        request: &sigv4::SignedRequest<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Principal, sigv4::SignatureError> {
        sigv4::verify(request, &self.access_keys, now)
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Resolves the `Authorization` header value to a principal.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        if self.open {
            return Ok(Principal::anonymous_admin());
        }
        let header = authorization.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.by_digest.get(&digest(token)).cloned().ok_or(AuthError::Invalid)
    }

    pub fn authorize(&self, authorization: Option<&str>, permission: Permission) -> Result<Principal, AuthError> {
        Self::permit(self.authenticate(authorization)?, permission)
    }

    /// The principal, if its role allows `permission`.
    pub fn permit(principal: Principal, permission: Permission) -> Result<Principal, AuthError> {
        if principal.role.allows(permission) {
            Ok(principal)
        } else {
            Err(AuthError::Forbidden {
                name: principal.name,
                role: principal.role,
                needed: match permission {
                    Permission::Read => "viewer, operator, approver or admin",
                    Permission::Operate => "operator or admin",
                    Permission::Approve => "approver or admin",
                    Permission::Invoke => "invoker or admin",
                },
            })
        }
    }
}

/// SHA-256 of a token, as stored in `auth.tokens[].sha256` (hex).
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> TokenRegistry {
        let principal = |name: &str, role| Principal { name: name.into(), role };
        TokenRegistry::new(
            [
                (digest("operator-token-123456"), principal("ops", Role::Operator)),
                (digest("approver-token-123456"), principal("boss", Role::Approver)),
            ],
            false,
        )
    }

    #[test]
    fn tokens_resolve_to_roles_and_permissions_are_enforced() {
        let r = registry();
        let ops = r.authorize(Some("Bearer operator-token-123456"), Permission::Operate).unwrap();
        assert_eq!(ops.name, "ops");
        let boss = r.authorize(Some("Bearer approver-token-123456"), Permission::Approve).unwrap();
        assert_eq!(boss.role, Role::Approver);
        assert!(matches!(
            r.authorize(Some("Bearer operator-token-123456"), Permission::Approve),
            Err(AuthError::Forbidden { .. })
        ));
        assert_eq!(r.authenticate(None), Err(AuthError::Missing));
        assert_eq!(r.authenticate(Some("Basic abc")), Err(AuthError::Missing));
        assert_eq!(r.authenticate(Some("Bearer nope")), Err(AuthError::Invalid));
    }

    #[test]
    fn role_matrix() {
        use Permission::*;
        assert!(Role::Admin.allows(Invoke) && Role::Admin.allows(Approve));
        assert!(Role::Viewer.allows(Read) && !Role::Viewer.allows(Operate));
        assert!(Role::Invoker.allows(Invoke) && !Role::Invoker.allows(Read));
        assert!(!Role::Operator.allows(Invoke));
    }

    #[test]
    fn open_registry_lets_everyone_in_as_admin() {
        let r = TokenRegistry::new([], true);
        assert_eq!(r.authorize(None, Permission::Approve).unwrap(), Principal::anonymous_admin());
    }
}
