//! A product as a value, and the few rules about it: what makes two writes
//! the same request, and which categories a filter covers. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The fields a caller sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    pub name: String,
    pub description: String,
    pub brand: String,
    pub category: String,
    pub currency: String,
    pub price_minor: i64,
    pub weight_grams: i64,
    pub attributes: BTreeMap<String, String>,
}

/// A product as stored (and cached).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: String,
    #[serde(flatten)]
    pub fields: Fields,
    pub version: i64,
    pub deleted: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Fields {
    /// What a write of these fields to `sku` is, for its idempotency: the
    /// same request id with other fields is another request.
    pub fn fingerprint(&self, operation: &str, sku: &str, expected_version: i64) -> String {
        let attributes = serde_json::to_string(&self.attributes).unwrap_or_default();
        meshwork_runtime::idempotency::fingerprint(&[
            operation,
            sku,
            &self.name,
            &self.description,
            &self.brand,
            &self.category,
            &self.currency,
            &self.price_minor.to_string(),
            &self.weight_grams.to_string(),
            &attributes,
            &expected_version.to_string(),
        ])
    }
}

/// Whether `category` is `filter` or below it ("kitchen" covers
/// "kitchen/teapots", not "kitchenware").
pub fn in_category(category: &str, filter: &str) -> bool {
    category == filter
        || category
            .strip_prefix(filter)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        Fields {
            name: "Mug".into(),
            description: String::new(),
            brand: "Acme".into(),
            category: "kitchen/mugs".into(),
            currency: "EUR".into(),
            price_minor: 1299,
            weight_grams: 350,
            attributes: BTreeMap::from([("colour".into(), "white".into())]),
        }
    }

    #[test]
    fn a_category_covers_its_subcategories_only() {
        assert!(in_category("kitchen", "kitchen"));
        assert!(in_category("kitchen/mugs", "kitchen"));
        assert!(!in_category("kitchenware", "kitchen"));
        assert!(!in_category("kitchen", "kitchen/mugs"));
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let a = fields();
        let mut b = fields();
        assert_eq!(
            a.fingerprint("create", "M1", 0),
            b.fingerprint("create", "M1", 0)
        );
        b.price_minor += 1;
        assert_ne!(
            a.fingerprint("create", "M1", 0),
            b.fingerprint("create", "M1", 0)
        );
        assert_ne!(
            a.fingerprint("create", "M1", 0),
            a.fingerprint("update", "M1", 0)
        );
        assert_ne!(
            a.fingerprint("update", "M1", 0),
            a.fingerprint("update", "M1", 3)
        );
    }

    #[test]
    fn a_product_round_trips_through_its_cached_form() {
        let product = Product {
            sku: "M1".into(),
            fields: fields(),
            version: 2,
            deleted: false,
            created_at: 1,
            updated_at: 2,
        };
        let json = serde_json::to_vec(&product).unwrap();
        assert_eq!(serde_json::from_slice::<Product>(&json).unwrap(), product);
    }
}
