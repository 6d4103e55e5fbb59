//! Secrets from files: any string key may instead be given as `<key>_file = "PATH"`
//! (relative paths from the config file's directory), in the TOML or the environment
//! (`LOYALTYD__SERVER__ADMIN_TOKEN_FILE=/run/secrets/admin`), so secrets need never
//! sit in the TOML itself (systemd credentials, Docker/Kubernetes secrets).

use std::path::Path;

use super::{find_key_line, ConfigError};

const SUFFIX: &str = "_file";

fn read(base: &Path, path: &str) -> Result<String, String> {
    let p = base.join(path);
    std::fs::read_to_string(&p)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| format!("cannot read secret file {}: {e}", p.display()))
}

/// Replace every `<key>_file` in the TOML table by `<key>` with the file's content.
pub(super) fn resolve_table(
    table: &mut toml::Table,
    prefix: &str,
    base: &Path,
    file: &str,
    text: &str,
) -> Result<(), ConfigError> {
    let keys: Vec<String> = table.keys().cloned().collect();
    for k in keys {
        let dotted = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let err = |message: String| ConfigError {
            file: file.to_string(),
            line: find_key_line(text, &dotted),
            key: dotted.clone(),
            message,
        };
        match table.get_mut(&k) {
            Some(toml::Value::Table(t)) => resolve_table(t, &dotted, base, file, text)?,
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let toml::Value::Table(t) = item {
                        resolve_table(t, &format!("{dotted}[{i}]"), base, file, text)?;
                    }
                }
            }
            Some(toml::Value::String(path)) if k.ends_with(SUFFIX) => {
                let path = path.clone();
                let target = k.trim_end_matches(SUFFIX).to_string();
                if table.contains_key(&target) {
                    return Err(err(format!("give either {target} or {k}, not both")));
                }
                let value = read(base, &path).map_err(err)?;
                table.remove(&k);
                table.insert(target, toml::Value::String(value));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The same for `LOYALTYD__…_FILE` environment variables.
pub(super) fn resolve_env(
    env: Vec<(String, String)>,
    base: &Path,
    file: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::with_capacity(env.len());
    for (k, v) in env {
        match k.strip_suffix("_FILE") {
            Some(target) if k.starts_with("LOYALTYD__") => {
                let value = read(base, &v).map_err(|message| ConfigError {
                    file: file.to_string(),
                    line: None,
                    key: k.clone(),
                    message,
                })?;
                out.push((target.to_string(), value));
            }
            _ => out.push((k, v)),
        }
    }
    Ok(out)
}
