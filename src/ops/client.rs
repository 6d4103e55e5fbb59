//! A small client of a running daemon's admin API, for `loyaltyd member …` and
//! `loyaltyd backup` (sled lets one process open the data, so while the daemon runs
//! the CLI goes through it).

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

/// Where the daemon is and how to authenticate.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Bearer token.
    pub token: String,
}

impl Target {
    /// `--url` and `--token` when given, else `server.listen` and `server.admin_token`
    /// of the config file (read only when one of them is missing).
    pub fn resolve(
        config: &std::path::Path,
        url: Option<String>,
        token: Option<String>,
    ) -> anyhow::Result<Target> {
        let (url, token) = match (url, token) {
            (Some(u), Some(t)) => (u, t),
            (url, token) => {
                let c = crate::config::Config::load(config)
                    .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
                let url = match url {
                    Some(u) => u,
                    None => {
                        let mut addr = c.server.listen;
                        if addr.port() == 0 {
                            bail!(
                                "server.listen in {} has port 0 (a free port picked at start); \
                                 pass --url with the address the daemon printed",
                                config.display()
                            );
                        }
                        if addr.ip().is_unspecified() {
                            addr.set_ip(if addr.is_ipv4() {
                                std::net::Ipv4Addr::LOCALHOST.into()
                            } else {
                                std::net::Ipv6Addr::LOCALHOST.into()
                            });
                        }
                        format!("http://{addr}")
                    }
                };
                let token = match token {
                    Some(t) => t,
                    None => String::from_utf8_lossy(c.server.admin_token.expose()).into_owned(),
                };
                (url, token)
            }
        };
        Ok(Target {
            url: url.trim_end_matches('/').to_string(),
            token,
        })
    }
}

/// An answer from the API.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
    /// Whether the daemon replayed an earlier answer for the Idempotency-Key.
    pub replayed: bool,
}

/// The client: a small tokio runtime and a reqwest client.
pub struct Client {
    target: Target,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Client {
    /// A client for `target`.
    pub fn new(target: Target) -> anyhow::Result<Client> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Client { target, http, rt })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.url)
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "cannot reach loyaltyd at {}: {e} (is the daemon running? --url / --config \
             say where)",
            self.target.url
        )
    }

    /// GET `path` (with its query); an API error becomes an `Err` naming its code.
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let a = self.rt.block_on(async {
            let r = self
                .http
                .get(self.url(path))
                .query(query)
                .bearer_auth(&self.target.token)
                .send()
                .await
                .map_err(|e| self.unreachable(e))?;
            answer(r).await
        })?;
        Ok(a.body)
    }

    /// POST a JSON body with an `Idempotency-Key`.
    pub fn post(&self, path: &str, idempotency_key: &str, body: &Value) -> anyhow::Result<Answer> {
        self.rt.block_on(async {
            let r = self
                .http
                .post(self.url(path))
                .bearer_auth(&self.target.token)
                .header("Idempotency-Key", idempotency_key)
                .json(body)
                .send()
                .await
                .map_err(|e| self.unreachable(e))?;
            answer(r).await
        })
    }

    /// POST `path` and write the streamed answer to `out`; returns the bytes written.
    pub fn download(
        &self,
        path: &str,
        out: &mut dyn std::io::Write,
        mut progress: impl FnMut(u64),
    ) -> anyhow::Result<u64> {
        self.rt.block_on(async {
            let mut r = self
                .http
                .post(self.url(path))
                .bearer_auth(&self.target.token)
                .send()
                .await
                .map_err(|e| self.unreachable(e))?;
            if !r.status().is_success() {
                answer(r).await?;
                bail!("unexpected answer");
            }
            let mut n = 0u64;
            while let Some(chunk) = r.chunk().await.context("the backup stream broke off")? {
                out.write_all(&chunk)?;
                n += chunk.len() as u64;
                progress(chunk.len() as u64);
            }
            Ok(n)
        })
    }
}

/// A successful answer, or an error naming the API's `code` and `message`.
async fn answer(r: reqwest::Response) -> anyhow::Result<Answer> {
    let status = r.status();
    let replayed = r.headers().get("idempotent-replayed").is_some();
    let text = r.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(Answer {
            status: status.as_u16(),
            body,
            replayed,
        });
    }
    match (
        body["error"]["code"].as_str(),
        body["error"]["message"].as_str(),
    ) {
        (Some(code), Some(message)) => bail!("{} {code}: {message}", status.as_u16()),
        _ => bail!(
            "HTTP {}: {}",
            status.as_u16(),
            text.chars().take(200).collect::<String>()
        ),
    }
}
