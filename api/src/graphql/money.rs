//! The `Money` scalar: a decimal string such as "12.50". JSON numbers are refused (they pass
//! through binary floating point on the way in).

use agora_domain::money::Money;
use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoneyScalar(pub Money);

#[Scalar(name = "Money")]
impl ScalarType for MoneyScalar {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => Money::parse(s)
                .map(MoneyScalar)
                .map_err(|e| InputValueError::custom(format!("invalid Money {s:?}: {e}"))),
            _ => Err(InputValueError::custom(
                "Money must be a decimal string such as \"12.50\", not a number",
            )),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

impl serde::Serialize for MoneyScalar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for MoneyScalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Money::deserialize(d).map(MoneyScalar)
    }
}
