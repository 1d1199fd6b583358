//! Credentials: basic or bearer auth, from the options or from the URL's userinfo, and the
//! `Authorization` header they make.
//!
//! Must never log or show a secret (`Debug` masks it).

/// Registry credentials. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// HTTP basic auth (`Authorization: Basic`), e.g. Confluent Cloud API key and secret.
    Basic {
        /// The user name (API key).
        username: String,
        /// The password (API secret).
        password: String,
    },
    /// A bearer token (`Authorization: Bearer`), e.g. from `AVRO_EDGE_REGISTRY_TOKEN`.
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Basic { username, .. } => write!(f, "Basic({username}:***)"),
            Auth::Bearer(_) => write!(f, "Bearer(***)"),
        }
    }
}

impl Auth {
    pub(super) fn header_value(&self) -> String {
        match self {
            Auth::Basic { username, password } => format!(
                "Basic {}",
                base64(format!("{username}:{password}").as_bytes())
            ),
            Auth::Bearer(token) => format!("Bearer {token}"),
        }
    }
}

/// Split `http://user:pass@host:port/path` into the URL without userinfo and the credentials.
pub(super) fn split_userinfo(url: &str) -> (String, Option<Auth>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let (u, p) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let auth = Auth::Basic {
                username: super::super::percent::percent_decode(u),
                password: super::super::percent::percent_decode(p),
            };
            (format!("{scheme}://{host}{path}"), Some(auth))
        }
        None => (url.to_string(), None),
    }
}

pub(super) fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
