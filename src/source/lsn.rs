//! A WAL position (`pg_lsn`): pgdr's own type, so the stored formats and the decoder do not
//! depend on any protocol crate's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{PgdrError, Result};

/// A position in the WAL, printed and parsed as PostgreSQL prints it (`16/B374D848`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const ZERO: Lsn = Lsn(0);

    /// Fixed-width hex (16 digits): sorts as the position does, for keys.
    pub fn to_key(self) -> String {
        format!("{:016X}", self.0)
    }

    /// Inverse of [`Lsn::to_key`].
    pub fn from_key(s: &str) -> Option<Lsn> {
        if s.len() != 16 {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(Lsn)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = PgdrError;

    fn from_str(s: &str) -> Result<Lsn> {
        let bad = || {
            PgdrError::usage(format!(
                "'{s}' is not a WAL position: write it as PostgreSQL prints pg_lsn, e.g. 16/B374D848"
            ))
        };
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Lsn, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: PgdrError| serde::de::Error::custom(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_parses_as_postgres_does() {
        let l: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn::ZERO);
        assert!("16B374D848".parse::<Lsn>().is_err());
        assert!("x/1".parse::<Lsn>().is_err());
    }

    #[test]
    fn keys_sort_as_positions() {
        let a = Lsn(0x9_0000_0000).to_key();
        let b = Lsn(0x10_0000_0000).to_key();
        assert!(a < b);
        assert_eq!(Lsn::from_key(&a), Some(Lsn(0x9_0000_0000)));
        assert_eq!(Lsn::from_key("12"), None);
    }

    #[test]
    fn serde_as_text() {
        let j = serde_json::to_string(&Lsn(0x1_0000_0010)).unwrap();
        assert_eq!(j, "\"1/10\"");
        assert_eq!(serde_json::from_str::<Lsn>(&j).unwrap(), Lsn(0x1_0000_0010));
    }
}
