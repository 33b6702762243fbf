//! Values that may be written in a short scalar form or as a mapping (`vlans: [10, {vid: 20,
//! pvid: true}]`, `neighbour_limits: auto` or `{gc_thresh1: ..}`). serde's `untagged` tries
//! each form and, when none fits, says only "data did not match any variant", which hides a
//! misspelt field of the mapping. Here the value's shape picks the form: a mapping is decoded as
//! the mapping form, so its own error (unknown field `pvdi`, missing field `gc_thresh2`) is
//! reported, at its place inside the mapping; anything else is tried as the scalar form, and when
//! that fails the message names every accepted form.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeOwned, IntoDeserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer};

/// Which form a value was written in.
pub enum Form<S, M> {
    Scalar(S),
    Map(M),
}

/// Decodes a scalar form `S` or a mapping form `M`; `expecting` describes both for messages
/// ("a VLAN id or a mapping { vid, pvid, untagged }").
pub fn scalar_or_map<'de, D, S, M>(d: D, expecting: &'static str) -> Result<Form<S, M>, D::Error>
where
    D: Deserializer<'de>,
    S: DeserializeOwned,
    M: Deserialize<'de>,
{
    d.deserialize_any(FormVisitor::<S, M> { expecting, marker: PhantomData })
}

struct FormVisitor<S, M> {
    expecting: &'static str,
    marker: PhantomData<(S, M)>,
}

impl<S: DeserializeOwned, M> FormVisitor<S, M> {
    fn scalar<'a, E: de::Error>(&self, d: impl Deserializer<'a, Error = E>, found: Unexpected) -> Result<Form<S, M>, E> {
        S::deserialize(d).map(Form::Scalar).map_err(|_| E::invalid_value(found, &self.expecting))
    }
}

impl<'de, S: DeserializeOwned, M: Deserialize<'de>> Visitor<'de> for FormVisitor<S, M> {
    type Value = Form<S, M>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        M::deserialize(MapAccessDeserializer::new(map)).map(Form::Map)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.scalar(v.into_deserializer(), Unexpected::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.scalar(v.into_deserializer(), Unexpected::Signed(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.scalar(v.into_deserializer(), Unexpected::Unsigned(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.scalar(v.into_deserializer(), Unexpected::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.scalar(v.into_deserializer(), Unexpected::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(E::invalid_type(Unexpected::Unit, &self))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(E::invalid_type(Unexpected::Unit, &self))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::invalid_type(Unexpected::Seq, &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Full {
        vid: u16,
        #[serde(default)]
        pvid: bool,
    }

    fn decode(v: serde_json::Value) -> Result<String, String> {
        let r = serde_path_to_error::deserialize(&v).map(|f: Wrapper| f.0);
        match r {
            Ok(Form::Scalar(n)) => Ok(format!("scalar {n}")),
            Ok(Form::Map(m)) => Ok(format!("map {m:?}")),
            Err(e) => Err(format!("{} at `{}`", e.inner(), e.path())),
        }
    }

    struct Wrapper(Form<u16, Full>);
    impl<'de> Deserialize<'de> for Wrapper {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            scalar_or_map(d, "a VLAN id or a mapping").map(Wrapper)
        }
    }

    #[test]
    fn the_shape_picks_the_form_and_the_mapping_form_reports_its_own_errors() {
        use serde_json::json;
        assert_eq!(decode(json!(20)).unwrap(), "scalar 20");
        assert_eq!(decode(json!({"vid": 20, "pvid": true})).unwrap(), "map Full { vid: 20, pvid: true }");
        // The mapping's own error, located inside it.
        assert_eq!(decode(json!({"vid": 20, "pvdi": true})).unwrap_err(), "unknown field `pvdi`, expected `vid` or `pvid` at `pvdi`");
        assert_eq!(decode(json!({"vid": "x"})).unwrap_err(), "invalid type: string \"x\", expected u16 at `vid`");
        assert_eq!(decode(json!({"pvid": true})).unwrap_err(), "missing field `vid` at `.`");
        // A scalar that is not the scalar form: every form is named.
        assert_eq!(decode(json!(70000)).unwrap_err(), "invalid value: integer `70000`, expected a VLAN id or a mapping at `.`");
        assert_eq!(decode(json!("x")).unwrap_err(), "invalid value: string \"x\", expected a VLAN id or a mapping at `.`");
        assert_eq!(decode(json!([1])).unwrap_err(), "invalid type: sequence, expected a VLAN id or a mapping at `.`");
        assert_eq!(decode(json!(null)).unwrap_err(), "invalid type: null, expected a VLAN id or a mapping at `.`");
    }
}
