//! Raw key access to a test cluster through etcd's JSON gateway (`/v3/kv/*`), which takes and
//! returns bytes fields as base64.

use std::{cell::RefCell, time::Duration};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{JsonClient, etcd::Etcd, wait::try_wait_until};

/// How long a gateway call keeps trying the members, e.g. through an election after a kill.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// How long each of a call's first three rounds of gateway requests may take before the call
/// sends it again; every three rounds after that double it, up to [`MAX_ATTEMPT_TIMEOUT`].
///
/// A write sent just after the leader died waits for etcd's own request timeout (seven seconds
/// with the default election timeout), though a new leader takes over within one to two
/// seconds (the election timeout, randomised up to twice). Sending it again at this pace ends
/// the call soon after the election, and the doubling still lets a slow machine finish.
const FIRST_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(750);

/// The longest one gateway request may take.
const MAX_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

impl Etcd {
    /// Writes `key = value` through any member that answers, trying them in turn (through an
    /// election, say) until one accepts; panics with the last error if none does in time.
    pub async fn put(&self, key: &str, value: impl AsRef<[u8]>) {
        let body = put_body(key, value.as_ref());
        self.call(&self.all(), "/v3/kv/put", &body).await;
    }

    /// Writes `key = value` through member `i` alone, retrying until it accepts; panics with
    /// the last error if it does not in time.
    pub async fn put_on(&self, i: usize, key: &str, value: impl AsRef<[u8]>) {
        let body = put_body(key, value.as_ref());
        self.call(&[i], "/v3/kv/put", &body).await;
    }

    /// Returns the value of `key` (a linearizable read through any member that answers), or
    /// `None` if the key does not exist.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let body = json!({ "key": encode(key.as_bytes()) });
        let reply = self.call(&self.all(), "/v3/kv/range", &body).await;
        reply["kvs"]
            .as_array()
            .and_then(|kvs| kvs.first())
            .map(|kv| decode_field(kv, "value"))
    }

    /// Returns the keys that start with `prefix`, in key order.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut body = prefix_body(prefix);
        body["keys_only"] = json!(true);
        let reply = self.call(&self.all(), "/v3/kv/range", &body).await;
        reply["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| String::from_utf8_lossy(&decode_field(kv, "key")).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Returns how many keys start with `prefix`.
    pub async fn count_keys(&self, prefix: &str) -> usize {
        let mut body = prefix_body(prefix);
        body["count_only"] = json!(true);
        let reply = self.call(&self.all(), "/v3/kv/range", &body).await;
        // The gateway writes 64-bit integers as strings and leaves out zero values.
        match &reply["count"] {
            Value::Null => 0,
            Value::String(count) => count
                .parse()
                .unwrap_or_else(|_| panic!("etcd sent a count that is not a number: {reply}")),
            other => panic!("etcd sent an unexpected count: {other}"),
        }
    }

    /// Posts `body` to `path` on the members in `order` in turn until one answers 200 without
    /// an error, and returns that answer.
    async fn call(&self, order: &[usize], path: &str, body: &Value) -> Value {
        let last_error = RefCell::new(String::from("no member was tried"));
        let mut round = 0;
        let reply = try_wait_until(CALL_TIMEOUT, || {
            let timeout = (FIRST_ATTEMPT_TIMEOUT * 2u32.pow(round / 3)).min(MAX_ATTEMPT_TIMEOUT);
            round = (round + 1).min(30);
            let clients: Vec<JsonClient> = order
                .iter()
                .map(|&i| self.member(i).client.clone())
                .collect();
            let last_error = &last_error;
            async move {
                for client in &clients {
                    match post(client, path, body, timeout).await {
                        Ok((StatusCode::OK, reply)) if reply.get("error").is_none() => {
                            return Some(reply);
                        }
                        Ok((status, reply)) => {
                            *last_error.borrow_mut() =
                                format!("{}: {status} {reply}", client.base());
                        }
                        Err(e) => *last_error.borrow_mut() = format!("{}: {e}", client.base()),
                    }
                }
                None
            }
        })
        .await;
        reply.unwrap_or_else(|| {
            let last_error = last_error.borrow();
            panic!("etcd {path} failed for {CALL_TIMEOUT:?}; last error: {last_error}")
        })
    }

    fn all(&self) -> Vec<usize> {
        (0..self.members.len()).collect()
    }
}

/// Posts `body` to one member, giving up after `timeout`.
async fn post(
    client: &JsonClient,
    path: &str,
    body: &Value,
    timeout: Duration,
) -> reqwest::Result<(StatusCode, Value)> {
    let response = client
        .client()
        .post(client.url(path))
        .json(body)
        .timeout(timeout)
        .send()
        .await?;
    let status = response.status();
    let reply = response.json().await.unwrap_or(Value::Null);
    Ok((status, reply))
}

fn put_body(key: &str, value: &[u8]) -> Value {
    json!({ "key": encode(key.as_bytes()), "value": encode(value) })
}

/// Returns a range request for every key starting with `prefix`: `range_end` is the prefix with
/// its last byte below 0xff raised by one, or `\0` (everything) for a prefix with none.
fn prefix_body(prefix: &str) -> Value {
    let mut end = prefix.as_bytes().to_vec();
    while end.last() == Some(&0xff) {
        end.pop();
    }
    match end.last_mut() {
        Some(last) => *last += 1,
        None => end.push(0),
    }
    json!({ "key": encode(prefix.as_bytes()), "range_end": encode(&end) })
}

fn decode_field(kv: &Value, field: &str) -> Vec<u8> {
    // The gateway leaves out empty fields, so a missing value is an empty one.
    let text = kv[field].as_str().unwrap_or_default();
    decode(text).unwrap_or_else(|| panic!("etcd sent {field} that is not base64: {kv}"))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes `bytes` as padded standard base64, the form the gateway takes for bytes fields.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (group >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(BASE64[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64, padded or not; `None` if a character is outside the alphabet.
fn decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        let sextet = BASE64.iter().position(|&a| a == c)?;
        acc = (acc << 6 | sextet as u32) & 0xff_ffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_length() {
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"f"), "Zg==");
        let bytes: Vec<u8> = (0..=255).collect();
        for len in 0..bytes.len() {
            assert_eq!(decode(&encode(&bytes[..len])).unwrap(), &bytes[..len]);
        }
    }

    #[test]
    fn prefix_range_ends_after_the_prefix() {
        assert_eq!(prefix_body("/a")["range_end"], encode(b"/b"));
        assert_eq!(prefix_body("")["range_end"], encode(b"\0"));
    }
}
