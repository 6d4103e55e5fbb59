//! `[[tokens]]`: API tokens with a name, a role and the shops they may touch.

use loyaltyd_adapter::{Secret, ShopId};
use serde::Deserialize;

use super::{ConfigError, Locator};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Look things up, read reports.
    Read,
    /// Also redeem, adjust, change consent, retry dead letters.
    Write,
    /// Also merge members, import, back up.
    Admin,
}

impl Role {
    /// The role's name in the config.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// One API token.
#[derive(Debug, Clone)]
pub struct ApiToken {
    /// Name: the actor recorded in the journal and the log (never the token itself).
    pub name: String,
    /// The bearer token.
    pub token: Secret,
    /// Role.
    pub role: Role,
    /// Shops it may touch; `None`: every shop.
    pub shops: Option<Vec<ShopId>>,
}

impl ApiToken {
    /// Whether the token may act on `shop`.
    pub fn allows(&self, shop: &str) -> bool {
        match &self.shops {
            None => true,
            Some(list) => list.iter().any(|s| s.as_str() == shop),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    name: Option<String>,
    token: Option<String>,
    role: Option<String>,
    shops: Option<Vec<String>>,
}

pub(super) fn validate(
    raw: Vec<RawToken>,
    admin_token: &Secret,
    loc: &Locator<'_>,
) -> Result<Vec<ApiToken>, ConfigError> {
    // `server.admin_token` is the all-shops admin token named "admin".
    let mut out = vec![ApiToken {
        name: "admin".into(),
        token: admin_token.clone(),
        role: Role::Admin,
        shops: None,
    }];
    for (i, t) in raw.into_iter().enumerate() {
        let k = |f: &str| format!("tokens[{i}].{f}");
        let name = t
            .name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| loc.err(&k("name"), "is required"))?;
        if out.iter().any(|o| o.name == name) {
            return Err(loc.err(&k("name"), format!("token name {name:?} is used twice")));
        }
        let token = match t.token {
            Some(v) if v.trim().len() >= 16 => Secret::new(v.trim()),
            Some(_) => return Err(loc.err(&k("token"), "must be at least 16 characters long")),
            None => return Err(loc.err(&k("token"), "is required")),
        };
        if out.iter().any(|o| o.token == token) {
            return Err(loc.err(&k("token"), "the same token is configured twice"));
        }
        let role = match t.role.as_deref().unwrap_or("read") {
            "read" => Role::Read,
            "write" => Role::Write,
            "admin" => Role::Admin,
            other => {
                return Err(loc.err(
                    &k("role"),
                    format!("{other:?} is not \"read\", \"write\" or \"admin\""),
                ))
            }
        };
        let shops = match t.shops {
            None => return Err(loc.err(&k("shops"), "is required (shop ids, or [\"*\"] for all)")),
            Some(list) if list.iter().any(|s| s == "*") => None,
            Some(list) => Some(
                list.iter()
                    .map(|s| {
                        ShopId::new(s.as_str()).map_err(|e| loc.err(&k("shops"), e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        out.push(ApiToken {
            name,
            token,
            role,
            shops,
        });
    }
    Ok(out)
}
