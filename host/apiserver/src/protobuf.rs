//! Reading the protobuf bodies kubectl's typed clients send.
//!
//! `kubectl create namespace|secret|configmap|serviceaccount` writes through client-go's typed
//! clientset, which encodes request bodies as Kubernetes protobuf and does not fall back to JSON.
//! Decoding protobuf needs each type's field numbers, so only those kinds are understood (their
//! `ObjectMeta` fields that a create sets); anything else is refused with a hint.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::status::ApiError;

/// `k8s\0`: the envelope prefix of Kubernetes protobuf.
const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.buf.split_first()?;
            self.buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// The next `(field number, value)`, `None` at the end; `Err` on malformed input.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, ()> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint().ok_or(())?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint().ok_or(())?),
            2 => {
                let len = usize::try_from(self.varint().ok_or(())?).map_err(|_| ())?;
                if len > self.buf.len() {
                    return Err(());
                }
                let (bytes, rest) = self.buf.split_at(len);
                self.buf = rest;
                Field::Bytes(bytes)
            }
            1 => {
                self.skip(8)?;
                Field::Varint(0)
            }
            5 => {
                self.skip(4)?;
                Field::Varint(0)
            }
            _ => return Err(()),
        };
        Ok(Some((key >> 3, field)))
    }

    fn skip(&mut self, n: usize) -> Result<(), ()> {
        if n > self.buf.len() {
            return Err(());
        }
        self.buf = &self.buf[n..];
        Ok(())
    }
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ()> {
    let mut reader = Reader { buf };
    let mut out = Vec::new();
    while let Some(f) = reader.next()? {
        out.push(f);
    }
    Ok(out)
}

fn text(bytes: &[u8]) -> Result<String, ()> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ())
}

/// A `map<string, string>` (or bytes, base64-encoded as JSON does) entry.
fn map_entry(bytes: &[u8], binary: bool) -> Result<(String, Value), ()> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => key = text(b)?,
            (2, Field::Bytes(b)) if binary => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(b));
            }
            (2, Field::Bytes(b)) => value = json!(text(b)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn insert_entry(target: &mut Map<String, Value>, field: &str, entry: (String, Value)) {
    let map = target
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(map) = map {
        map.insert(entry.0, entry.1);
    }
}

fn push(target: &mut Map<String, Value>, field: &str, value: Value) {
    let list = target.entry(field).or_insert_with(|| json!([]));
    if let Value::Array(list) = list {
        list.push(value);
    }
}

fn object_meta(bytes: &[u8]) -> Result<Value, ()> {
    let mut meta = Map::new();
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => {
                meta.insert("name".into(), json!(text(b)?));
            }
            (2, Field::Bytes(b)) => {
                meta.insert("generateName".into(), json!(text(b)?));
            }
            (3, Field::Bytes(b)) => {
                meta.insert("namespace".into(), json!(text(b)?));
            }
            (6, Field::Bytes(b)) => {
                meta.insert("resourceVersion".into(), json!(text(b)?));
            }
            (11, Field::Bytes(b)) => insert_entry(&mut meta, "labels", map_entry(b, false)?),
            (12, Field::Bytes(b)) => insert_entry(&mut meta, "annotations", map_entry(b, false)?),
            (14, Field::Bytes(b)) => push(&mut meta, "finalizers", json!(text(b)?)),
            _ => {}
        }
    }
    Ok(Value::Object(meta))
}

/// The JSON form of a protobuf-encoded object of the kinds kubectl's generators create.
pub(crate) fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let bad =
        || ApiError::BadRequest("the body of the request is not valid Kubernetes protobuf".into());
    let envelope = body.strip_prefix(MAGIC).ok_or_else(bad)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(envelope).map_err(|()| bad())? {
        match (n, f) {
            (1, Field::Bytes(type_meta)) => {
                for (n, f) in fields(type_meta).map_err(|()| bad())? {
                    match (n, f) {
                        (1, Field::Bytes(b)) => api_version = text(b).map_err(|()| bad())?,
                        (2, Field::Bytes(b)) => kind = text(b).map_err(|()| bad())?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    let decoded = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => decode_kind(raw, &mut object, |n, f, o| match (n, f) {
            (2, Field::Bytes(spec)) => {
                let mut s = Map::new();
                for (n, f) in fields(spec)? {
                    if let (1, Field::Bytes(b)) = (n, f) {
                        push(&mut s, "finalizers", json!(text(b)?));
                    }
                }
                o.insert("spec".into(), Value::Object(s));
                Ok(())
            }
            _ => Ok(()),
        }),
        ("v1", "Secret") => decode_kind(raw, &mut object, |n, f, o| {
            match (n, f) {
                (2, Field::Bytes(b)) => insert_entry(o, "data", map_entry(b, true)?),
                (3, Field::Bytes(b)) => {
                    o.insert("type".into(), json!(text(b)?));
                }
                (4, Field::Bytes(b)) => insert_entry(o, "stringData", map_entry(b, false)?),
                (5, Field::Varint(v)) => {
                    o.insert("immutable".into(), json!(v != 0));
                }
                _ => {}
            }
            Ok(())
        }),
        ("v1", "ConfigMap") => decode_kind(raw, &mut object, |n, f, o| {
            match (n, f) {
                (2, Field::Bytes(b)) => insert_entry(o, "data", map_entry(b, false)?),
                (3, Field::Bytes(b)) => insert_entry(o, "binaryData", map_entry(b, true)?),
                (4, Field::Varint(v)) => {
                    o.insert("immutable".into(), json!(v != 0));
                }
                _ => {}
            }
            Ok(())
        }),
        ("v1", "ServiceAccount") => decode_kind(raw, &mut object, |_, _, _| Ok(())),
        _ => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "this API server reads protobuf bodies only for Namespace, Secret, ConfigMap and \
                 ServiceAccount, not {kind} ({api_version}); send JSON instead, e.g. \
                 `kubectl create ... --dry-run=client -o yaml | kubectl apply -f -`"
            )));
        }
    };
    decoded.map_err(|()| bad())?;
    Ok(Value::Object(object))
}

/// Reads a top-level object: field 1 is always `metadata`; `rest` handles the others.
fn decode_kind(
    raw: &[u8],
    object: &mut Map<String, Value>,
    mut rest: impl FnMut(u64, Field<'_>, &mut Map<String, Value>) -> Result<(), ()>,
) -> Result<(), ()> {
    for (n, f) in fields(raw)? {
        match (n, f) {
            (1, Field::Bytes(b)) => {
                object.insert("metadata".into(), object_meta(b)?);
            }
            (n, f) => rest(n, f, object)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::try_from(n << 3 | 2).unwrap_or(0)];
        out.push(u8::try_from(payload.len()).unwrap_or(0));
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn a_secret_from_kubectl_create_secret_generic_decodes() {
        let meta = [bytes_field(1, b"creds"), bytes_field(3, b"default")].concat();
        let entry = [bytes_field(1, b"password"), bytes_field(2, b"hunter2")].concat();
        let secret = [
            bytes_field(1, &meta),
            bytes_field(2, &entry),
            bytes_field(3, b"Opaque"),
        ]
        .concat();
        let type_meta = [bytes_field(1, b"v1"), bytes_field(2, b"Secret")].concat();
        let body = [
            MAGIC.to_vec(),
            bytes_field(1, &type_meta),
            bytes_field(2, &secret),
        ]
        .concat();
        let decoded = decode(&body).expect("decodes");
        assert_eq!(
            decoded,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": { "name": "creds", "namespace": "default" },
                "data": { "password": "aHVudGVyMg==" },
                "type": "Opaque",
            })
        );
    }

    #[test]
    fn other_kinds_are_refused_with_a_way_out() {
        let type_meta = [bytes_field(1, b"batch/v1"), bytes_field(2, b"Job")].concat();
        let body = [MAGIC.to_vec(), bytes_field(1, &type_meta)].concat();
        let err = decode(&body)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("--dry-run=client -o yaml | kubectl apply -f -"),
            "{err}"
        );
    }
}
