//! Masking at the door: account and card numbers, phone numbers, e-mail
//! addresses and ID numbers are never stored or returned in clear.
//!
//! Rules are regular expressions with a style; the standard set covers the
//! kinds above and a JSON file can add or replace rules:
//! ```json
//! {"standard": true,
//!  "rules": [{"name": "passport", "pattern": "\\b[A-Z]\\d{8}\\b", "keep_start": 1, "keep_end": 2}],
//!  "unmasked_attributes": ["amount_minor"]}
//! ```
//! Attributes named in `unmasked_attributes` (amounts, scores) are kept as
//! they are; everything else in an event is masked.

use std::collections::BTreeSet;

use regex::Regex;
use serde::Deserialize;

/// How a match is hidden.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Style {
    /// Keep this many letters or digits at each end, star the rest
    /// (separators such as spaces and dashes stay).
    Keep { start: usize, end: usize },
    /// `a***@example.com`: the first character of the local part and the
    /// domain.
    Email,
}

/// One masking rule.
#[derive(Debug, Clone)]
pub struct Rule {
    name: String,
    pattern: Regex,
    style: Style,
}

/// The rules in force.
#[derive(Debug, Clone)]
pub struct Masking {
    rules: Vec<Rule>,
    unmasked_attributes: BTreeSet<String>,
}

/// A masking configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MaskingError {
    /// Not the JSON described in the module docs.
    #[error("masking rules: {0}")]
    Json(#[from] serde_json::Error),
    /// A pattern that does not compile.
    #[error("masking rule {name}: {error}")]
    Pattern { name: String, error: regex::Error },
}

#[derive(Deserialize)]
struct FileConfig {
    #[serde(default = "yes")]
    standard: bool,
    #[serde(default)]
    rules: Vec<FileRule>,
    #[serde(default)]
    unmasked_attributes: Vec<String>,
}

#[derive(Deserialize)]
struct FileRule {
    name: String,
    pattern: String,
    #[serde(default)]
    keep_start: usize,
    #[serde(default)]
    keep_end: usize,
}

fn yes() -> bool {
    true
}

/// Attributes that hold amounts or scores, never personal data.
const STANDARD_UNMASKED: &[&str] = &["amount_minor", "risk_score", "currency"];

impl Masking {
    /// The standard rules, most specific first (an ID number is not taken
    /// for a card number, an e-mail's digits not for a phone). Boundaries
    /// are ASCII word boundaries: a number right after Chinese text
    /// ("卡号6222…") is found, one glued to Latin letters or `_` (ids such as
    /// `acc_0193…`) is not.
    pub fn standard() -> Self {
        let keep = |start, end| Style::Keep { start, end };
        let rules = [
            (
                "email",
                r"(?-u:\b)[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}(?-u:\b)",
                Style::Email,
            ),
            // Mainland China resident ID: 17 digits and a check character.
            ("id_number", r"(?-u:\b)\d{17}[\dXx](?-u:\b)", keep(3, 4)),
            // Card and account numbers: 13 to 19 digits, maybe grouped.
            (
                "card_or_account_number",
                r"(?-u:\b)\d(?:[ -]?\d){12,18}(?-u:\b)",
                keep(4, 4),
            ),
            ("phone_cn", r"(?-u:\b)1[3-9]\d{9}(?-u:\b)", keep(3, 4)),
            ("phone_international", r"\+\d{8,15}(?-u:\b)", keep(3, 2)),
        ];
        Self {
            rules: rules
                .into_iter()
                .map(|(name, pattern, style)| Rule {
                    name: name.to_owned(),
                    pattern: Regex::new(pattern).expect("standard masking patterns compile"),
                    style,
                })
                .collect(),
            unmasked_attributes: STANDARD_UNMASKED.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Rules from a JSON configuration (see the module docs).
    pub fn from_json(text: &str) -> Result<Self, MaskingError> {
        let config: FileConfig = serde_json::from_str(text)?;
        let mut masking = if config.standard {
            Self::standard()
        } else {
            Self {
                rules: Vec::new(),
                unmasked_attributes: BTreeSet::new(),
            }
        };
        for rule in config.rules {
            let pattern = Regex::new(&rule.pattern).map_err(|error| MaskingError::Pattern {
                name: rule.name.clone(),
                error,
            })?;
            masking.rules.push(Rule {
                name: rule.name,
                pattern,
                style: Style::Keep {
                    start: rule.keep_start,
                    end: rule.keep_end,
                },
            });
        }
        masking
            .unmasked_attributes
            .extend(config.unmasked_attributes);
        Ok(masking)
    }

    /// The names of the rules, in the order they apply.
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// `text` with every match of every rule hidden.
    pub fn mask(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for rule in &self.rules {
            text = rule
                .pattern
                .replace_all(&text, |captures: &regex::Captures<'_>| {
                    hide(&captures[0], &rule.style)
                })
                .into_owned();
        }
        text
    }

    /// An attribute's value, masked unless the attribute is exempt.
    pub fn mask_attribute(&self, key: &str, value: &str) -> String {
        if self.unmasked_attributes.contains(key) {
            value.to_owned()
        } else {
            self.mask(value)
        }
    }
}

fn hide(found: &str, style: &Style) -> String {
    match style {
        Style::Email => {
            let (local, domain) = found.split_once('@').unwrap_or((found, ""));
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        Style::Keep { start, end } => {
            let significant = found.chars().filter(|c| c.is_alphanumeric()).count();
            // Short matches keep less, so that something is always hidden.
            let (start, end) = if start + end >= significant {
                (significant / 4, significant / 4)
            } else {
                (*start, *end)
            };
            let mut seen = 0;
            found
                .chars()
                .map(|c| {
                    if !c.is_alphanumeric() {
                        return c;
                    }
                    seen += 1;
                    if seen <= start || seen > significant - end {
                        c
                    } else {
                        '*'
                    }
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_rules_hide_each_kind() {
        let m = Masking::standard();
        let cases = [
            (
                "account 6222021234567890 opened",
                "account 6222********7890 opened",
            ),
            ("card 4111 1111 1111 1111", "card 4111 **** **** 1111"),
            ("card 4111-1111-1111-1111!", "card 4111-****-****-1111!"),
            ("call 13812345678", "call 138****5678"),
            ("call +447911123456", "call +447*******56"),
            (
                "mail wang.fang@example.com now",
                "mail w***@example.com now",
            ),
            ("id 11010519491231002X", "id 110***********002X"),
            (
                "卡号6222021234567890，手机13812345678",
                "卡号6222********7890，手机138****5678",
            ),
        ];
        for (clear, masked) in cases {
            assert_eq!(m.mask(clear), masked, "{clear}");
        }
    }

    #[test]
    fn ids_amounts_and_short_numbers_stay() {
        let m = Masking::standard();
        for kept in [
            "acc_0193a1b2c3d4e5f60718293a4b5c6d7e",
            "trf_01931234567890123456789012345678",
            "amount 125000",
            "2026-11-25T10:00:00Z",
        ] {
            assert_eq!(m.mask(kept), kept);
        }
        assert_eq!(
            m.mask_attribute("amount_minor", "10000000000000"),
            "10000000000000"
        );
        assert_eq!(m.mask_attribute("memo", "10000000000000"), "1000******0000");
    }

    #[test]
    fn files_add_rules_and_exemptions() {
        let m = Masking::from_json(
            r#"{"rules":[{"name":"passport","pattern":"\\b[A-Z]\\d{8}\\b","keep_start":1,"keep_end":2}],
                "unmasked_attributes":["ticket"]}"#,
        )
        .unwrap();
        assert_eq!(m.rule_names().last(), Some(&"passport"));
        assert_eq!(m.mask("passport E12345678"), "passport E******78");
        assert_eq!(m.mask("13812345678"), "138****5678", "standard rules stay");
        assert_eq!(m.mask_attribute("ticket", "13812345678"), "13812345678");
        let only = Masking::from_json(r#"{"standard":false,"rules":[]}"#).unwrap();
        assert_eq!(only.mask("13812345678"), "13812345678");
        assert!(matches!(
            Masking::from_json(r#"{"rules":[{"name":"bad","pattern":"("}]}"#),
            Err(MaskingError::Pattern { .. })
        ));
    }
}
