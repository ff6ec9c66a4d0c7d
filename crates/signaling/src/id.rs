//! Identifiers: who takes part in calls, and which call or group a message is about.
//!
//! Participants use the raw form of the ACS Calling SDK: `8:<user-id>` for a
//! communication user, `4:+<E.164>` for a phone number and `8:echo123` for the audio
//! and video test service. Every identifier that crosses the wire is validated on
//! the way in, so the cores never see an empty, oversized or non-ASCII id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The raw id of the echo test service.
pub const ECHO_SERVICE_RAW_ID: &str = "8:echo123";

/// Longest user id or call id we accept, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// What a group call's [`CallId`] starts with.
const GROUP_CALL_PREFIX: &str = "group:";

/// A participant of a call: a communication user, a phone number or the echo service.
///
/// Ordered so that rosters and fan-out are deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identifier {
    /// A Ringwire user, `8:<user-id>`.
    User(UserId),
    /// A phone number reached through a SIP trunk, `4:+<E.164>`.
    Phone(PhoneNumber),
    /// The audio and video test service, `8:echo123`.
    EchoService,
}

/// The id of a Ringwire user (the part after `8:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

/// A phone number in E.164 form: `+`, then 2 to 15 digits, the first not `0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The string is empty.
    #[error("identifier is empty")]
    Empty,
    /// The string is longer than the id kind allows ([`MAX_ID_LEN`] for users and calls).
    #[error("identifier is too long")]
    TooLong,
    /// The prefix is neither `8:` nor `4:`.
    #[error("identifier must start with `8:` (user) or `4:` (phone number)")]
    UnknownPrefix,
    /// A character outside `A-Z a-z 0-9 - _ . : @`.
    #[error("identifier contains the character {0:?}, which is not allowed")]
    BadCharacter(char),
    /// A `4:` identifier whose number is not E.164.
    #[error("phone number must be E.164: `+` and 2 to 15 digits, the first not 0")]
    NotE164,
}

impl Identifier {
    /// Makes a user identifier from the part after `8:`.
    ///
    /// # Errors
    /// When the id is empty, too long or has a character outside `A-Z a-z 0-9 - _ . : @`.
    pub fn user(id: &str) -> Result<Self, IdError> {
        Ok(Identifier::User(UserId::new(id)?))
    }

    /// Makes a phone identifier from an E.164 number such as `+15551230000`.
    ///
    /// # Errors
    /// When the number is not E.164.
    pub fn phone(number: &str) -> Result<Self, IdError> {
        Ok(Identifier::Phone(PhoneNumber::new(number)?))
    }

    /// Whether this participant is a person on a Ringwire client (not a phone or the echo service).
    ///
    /// A call ends when its last human leaves.
    pub fn is_user(&self) -> bool {
        matches!(self, Identifier::User(_))
    }

    /// The user id, when this is a user.
    pub fn as_user(&self) -> Option<&UserId> {
        match self {
            Identifier::User(u) => Some(u),
            _ => None,
        }
    }
}

impl FromStr for Identifier {
    type Err = IdError;

    fn from_str(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        if raw == ECHO_SERVICE_RAW_ID {
            return Ok(Identifier::EchoService);
        }
        if let Some(user) = raw.strip_prefix("8:") {
            return Identifier::user(user);
        }
        if let Some(number) = raw.strip_prefix("4:") {
            return Identifier::phone(number);
        }
        Err(IdError::UnknownPrefix)
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identifier::User(u) => write!(f, "8:{}", u.0),
            Identifier::Phone(p) => write!(f, "4:{}", p.0),
            Identifier::EchoService => f.write_str(ECHO_SERVICE_RAW_ID),
        }
    }
}

impl UserId {
    /// Validates a user id (the part after `8:`).
    ///
    /// `echo123` is reserved for the echo service and is refused here, so that
    /// `8:echo123` always means the service.
    ///
    /// # Errors
    /// When the id is empty, too long, reserved, or has a character outside
    /// `A-Z a-z 0-9 - _ . : @`.
    pub fn new(id: &str) -> Result<Self, IdError> {
        check_token(id, MAX_ID_LEN)?;
        if id == "echo123" {
            return Err(IdError::UnknownPrefix);
        }
        Ok(UserId(id.to_owned()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PhoneNumber {
    /// Validates an E.164 number such as `+15551230000`.
    ///
    /// # Errors
    /// When it is not `+` followed by 2 to 15 digits, the first not `0`.
    pub fn new(number: &str) -> Result<Self, IdError> {
        let digits = number.strip_prefix('+').ok_or(IdError::NotE164)?;
        // ITU-T E.164 §6: at most 15 digits; country codes never start with 0.
        let ok = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !ok {
            return Err(IdError::NotE164);
        }
        Ok(PhoneNumber(number.to_owned()))
    }

    /// The number with its leading `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Defines a validated string id newtype with serde and display support.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Longest id accepted, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates an id: 1 to `MAX_LEN` bytes of `A-Z a-z 0-9 - _ . : @`.
            ///
            /// # Errors
            /// When the id is empty, too long or has another character.
            pub fn new(id: &str) -> Result<Self, IdError> {
                check_token(id, $max)?;
                Ok($name(id.to_owned()))
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                $name::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = std::borrow::Cow::<'de, str>::deserialize(d)?;
                $name::new(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// Identifies a call on the server and on every client in it.
    ///
    /// The client that starts a call chooses its id (random, from its seeded
    /// generator); a group call's id is derived from its group id with
    /// [`CallId::for_group`], so everyone who joins the group names it alike.
    CallId,
    MAX_ID_LEN
);

string_id!(
    /// Identifies a group call that participants join by id, in the ACS sense of a
    /// group call locator.
    GroupId,
    MAX_ID_LEN - GROUP_CALL_PREFIX.len()
);

impl CallId {
    /// The id of the call that group `group` holds.
    pub fn for_group(group: &GroupId) -> CallId {
        // GroupId::MAX_LEN leaves room for the prefix, so this is a valid CallId.
        CallId(format!("{GROUP_CALL_PREFIX}{}", group.0))
    }

    /// The group this call belongs to, when it is a group call id.
    pub fn group(&self) -> Option<GroupId> {
        self.0
            .strip_prefix(GROUP_CALL_PREFIX)
            .map(|g| GroupId(g.to_owned()))
    }
}

impl Serialize for Identifier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Identifier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = std::borrow::Cow::<'de, str>::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = std::borrow::Cow::<'de, str>::deserialize(d)?;
        PhoneNumber::new(&raw).map_err(serde::de::Error::custom)
    }
}

/// Checks the shared shape of user, call and group ids.
fn check_token(id: &str, max: usize) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > max {
        return Err(IdError::TooLong);
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@')))
    {
        return Err(IdError::BadCharacter(bad));
    }
    Ok(())
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Identifier {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        // A small id space, so that fuzzed operations hit the same users often.
        Ok(match u.int_in_range(0..=9u8)? {
            0 => Identifier::EchoService,
            1 => Identifier::Phone(PhoneNumber(format!(
                "+1555000{:04}",
                u.int_in_range(0..=3u16)?
            ))),
            _ => Identifier::User(UserId(format!("u{}", u.int_in_range(0..=7u8)?))),
        })
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for CallId {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        // Few ids, some of them group calls, so fuzzed messages name live calls.
        let n = u.int_in_range(0..=5u8)?;
        Ok(if u.arbitrary()? {
            CallId(format!("{GROUP_CALL_PREFIX}g{n}"))
        } else {
            CallId(format!("c{n}"))
        })
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for GroupId {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(GroupId(format!("g{}", u.int_in_range(0..=5u8)?)))
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for PhoneNumber {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(PhoneNumber(format!(
            "+1555000{:04}",
            u.int_in_range(0..=3u16)?
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!("8:alice".parse(), Identifier::user("alice"));
        assert_eq!("8:echo123".parse(), Ok(Identifier::EchoService));
        assert_eq!(
            "4:+15551230000".parse::<Identifier>().unwrap().to_string(),
            "4:+15551230000"
        );
        assert_eq!(
            "8:acs:1234-abcd".parse::<Identifier>().unwrap().to_string(),
            "8:acs:1234-abcd"
        );
    }

    #[test]
    fn rejects_bad_identifiers() {
        assert_eq!("".parse::<Identifier>(), Err(IdError::Empty));
        assert_eq!("9:x".parse::<Identifier>(), Err(IdError::UnknownPrefix));
        assert_eq!("8:".parse::<Identifier>(), Err(IdError::Empty));
        assert_eq!(
            "8:a b".parse::<Identifier>(),
            Err(IdError::BadCharacter(' '))
        );
        assert_eq!("4:15551230000".parse::<Identifier>(), Err(IdError::NotE164));
        assert_eq!(
            "4:+05551230000".parse::<Identifier>(),
            Err(IdError::NotE164)
        );
        assert_eq!(
            "4:+1234567890123456".parse::<Identifier>(),
            Err(IdError::NotE164)
        );
        assert_eq!("4:+1".parse::<Identifier>(), Err(IdError::NotE164));
        assert_eq!("4:+1555x".parse::<Identifier>(), Err(IdError::NotE164));
        let long = format!("8:{}", "a".repeat(MAX_ID_LEN + 1));
        assert_eq!(long.parse::<Identifier>(), Err(IdError::TooLong));
        assert!(UserId::new("echo123").is_err());
    }

    #[test]
    fn group_call_ids_round_trip() {
        let g = GroupId::new("team-standup").unwrap();
        let c = CallId::for_group(&g);
        assert_eq!(c.as_str(), "group:team-standup");
        assert_eq!(c.group(), Some(g));
        assert_eq!(CallId::new("abc").unwrap().group(), None);
    }

    #[test]
    fn serde_uses_raw_form() {
        let id = Identifier::user("bob").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"8:bob\"");
        assert_eq!(serde_json::from_str::<Identifier>("\"8:bob\"").unwrap(), id);
        assert!(serde_json::from_str::<Identifier>("\"4:bob\"").is_err());
    }
}
