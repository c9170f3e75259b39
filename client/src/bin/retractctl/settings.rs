//! Where `retractctl`'s settings come from — flags, then `RETRACT_*` variables (both through
//! clap), then the config file, then defaults — and the connection they describe.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use retract_client::{Client, ConnectOptions};

use crate::{
    args::{Global, OutputFormat},
    output::Output,
};

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:50051";
const DEFAULT_TIMEOUT_S: u64 = 30;

/// A problem with what the operator gave, before any call.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// A bad setting (exit 2).
    #[error("{0}")]
    Usage(String),
    /// No caller token anywhere (exit 5).
    #[error(
        "no caller token: pass --token or --token-file, set RETRACT_TOKEN, or put `token_file` in the config file (try `retractctl token`)"
    )]
    NoToken,
}

/// The config file's keys (all optional).
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    endpoint: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    tls_domain_name: Option<String>,
    timeout_s: Option<u64>,
    output: Option<OutputFormat>,
}

/// Resolved settings.
pub struct Settings {
    pub endpoint: String,
    token: Option<String>,
    ca_file: Option<PathBuf>,
    identity: Option<(PathBuf, PathBuf)>,
    tls_domain_name: Option<String>,
    timeout: Duration,
    pub output: Output,
}

fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("retractctl").join("config.toml"))
}

fn read(path: &PathBuf, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Problem::Usage(format!("cannot read {what} {}: {e}", path.display())).into())
}

impl Settings {
    /// Flags and variables over the config file over defaults.
    pub fn resolve(flags: &Global) -> anyhow::Result<Self> {
        let file = match (&flags.config, default_config_path()) {
            (Some(path), _) => Some(path.clone()),
            (None, Some(path)) if path.exists() => Some(path),
            _ => None,
        };
        let file: FileSettings = match file {
            Some(path) => toml::from_str(&read(&path, "config file")?)
                .map_err(|e| Problem::Usage(format!("config file {}: {e}", path.display())))?,
            None => FileSettings::default(),
        };
        let token_file = flags.token_file.clone().or(file.token_file);
        let token = match (&flags.token, token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => Some(read(&path, "token file")?.trim().to_owned()),
            (None, None) => file.token,
        };
        let cert = flags.cert_file.clone().or(file.cert_file);
        let key = flags.key_file.clone().or(file.key_file);
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(Problem::Usage(
                    "a client certificate needs both cert_file and key_file".into(),
                )
                .into());
            }
        };
        Ok(Self {
            endpoint: flags
                .endpoint
                .clone()
                .or(file.endpoint)
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
            token,
            ca_file: flags.ca_file.clone().or(file.ca_file),
            identity,
            tls_domain_name: flags.tls_domain_name.clone().or(file.tls_domain_name),
            timeout: Duration::from_secs(
                flags
                    .timeout_s
                    .or(file.timeout_s)
                    .unwrap_or(DEFAULT_TIMEOUT_S),
            ),
            output: Output {
                format: flags.output.or(file.output).unwrap_or(OutputFormat::Human),
            },
        })
    }

    /// Connects with the caller token (lazily: the first call connects, and a lost
    /// connection is made again).
    pub fn connect(&self) -> anyhow::Result<Client> {
        let token = self.token.clone().ok_or(Problem::NoToken)?;
        if plaintext_to_another_host(&self.endpoint) {
            eprintln!(
                "warning: {} is plaintext and not this machine: the caller token crosses the network unencrypted (use https://)",
                self.endpoint
            );
        }
        let mut options = ConnectOptions::new(self.endpoint.clone())
            .token(token)
            .deadline(self.timeout)
            .connect_timeout(Duration::from_secs(10));
        if let Some(ca) = &self.ca_file {
            options = options.ca_certificate_pem(read(ca, "CA file")?);
        }
        if let Some((cert, key)) = &self.identity {
            options = options
                .client_identity_pem(read(cert, "client certificate")?, read(key, "client key")?);
        }
        if let Some(name) = &self.tls_domain_name {
            options = options.tls_domain_name(name.clone());
        }
        options
            .connect_lazy()
            .with_context(|| format!("cannot connect to {}", self.endpoint))
    }
}

/// Whether `endpoint` is `http://` to a host other than this machine's loopback.
fn plaintext_to_another_host(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    !(host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()))
}

#[cfg(test)]
mod plaintext_tests {
    use super::plaintext_to_another_host;

    #[test]
    fn only_plaintext_to_another_host_is_warned_about() {
        for quiet in [
            "http://127.0.0.1:50051",
            "http://localhost:50051",
            "http://[::1]:50051",
            "https://retract.internal:50051",
        ] {
            assert!(!plaintext_to_another_host(quiet), "{quiet}");
        }
        for loud in ["http://retract.internal:50051", "http://10.0.0.5:50051/"] {
            assert!(plaintext_to_another_host(loud), "{loud}");
        }
    }
}
